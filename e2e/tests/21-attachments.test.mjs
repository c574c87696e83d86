// Issue 17, the web app: images sent by the attach button, by drag and drop
// and by paste reach the other side as thumbnails that open in the image
// viewer (arrows, zoom, Escape); a file goes as a card and downloads with its
// bytes; a voice message is recorded (Chromium's fake microphone), sent and
// played on the other side; an upload survives a WebSocket reconnect; a file
// over the server's limit says so and nothing is sent; the room list names
// what a message carries. Screenshots of each state in
// e2e/artifacts/attachments/, in zh-CN and English, light and dark, at
// desktop and phone size, with axe on the timeline and the viewer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Server, launchBrowser, newUserContext, register, apiToken, apiCall, artifacts, seriousViolations, pageApi as api } from '../lib/harness.mjs';
import { png } from '../lib/png.mjs';

const dir = join(artifacts, 'attachments');
mkdirSync(dir, { recursive: true });
const FAKE_MEDIA = ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'];
const phone = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const SMALL_LIMIT = 100000;

let server;
let small;
let browser;
before(async () => {
  [server, small] = await Promise.all([
    new Server(['--message-rate', '1000', '--message-burst', '1000']).start(),
    new Server(['--max-upload-bytes', String(SMALL_LIMIT)]).start(),
  ]);
  browser = await launchBrowser(FAKE_MEDIA);
});
after(async () => {
  await browser?.close();
  await server?.stop();
  await small?.stop();
});

const shot = (page, name) => page.screenshot({ path: join(dir, `${name}.png`), animations: 'disabled' });

/** Pictures to send: stripes in two colours, `w`×`h`. */
const picture = (w, h, a = [37, 99, 235], b = [249, 115, 22]) => png(w, h, (x) => (Math.floor(x / 40) % 2 ? a : b));

async function openRoom(page, srv, roomId) {
  await page.goto(`${srv.url}/tools/chat/enhanced/${roomId}/`);
  await page.locator('#conn-pill[data-state="connected"]').waitFor();
  await page.locator('#message-rows .row').first().waitFor();
}

/** Alice and Bob in a new group room, each with the room open; `options` for Alice's browser. */
async function pair(srv = server, { aliceOptions = {}, bobOptions = {}, name = 'Photos 照片' } = {}) {
  const a = await newUserContext(browser, srv, aliceOptions);
  const b = await newUserContext(browser, srv, bobOptions);
  const alice = await register(a.page, srv, { displayName: '爱丽丝' });
  const bob = await register(b.page, srv, { displayName: 'Bob' });
  const room = await api(a.page, 'POST', '/chat/rooms/', { name, room_type: 'group', members: [bob.id] });
  await openRoom(a.page, srv, room.room_id);
  await openRoom(b.page, srv, room.room_id);
  return { a, b, alice, bob, room };
}

/** Files as the page's own File objects in a DataTransfer (for drop and paste). */
function dataTransfer(page, files) {
  return page.evaluateHandle(
    (list) => {
      const transfer = new DataTransfer();
      for (const f of list) transfer.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name, { type: f.type }));
      return transfer;
    },
    files.map((f) => ({ name: f.name, type: f.mimeType, b64: f.buffer.toString('base64') })),
  );
}

/** Picks files with the attach button's file chooser (on a touch screen through its menu). */
async function attachByButton(page, files) {
  const chooser = page.waitForEvent('filechooser');
  await page.click('#attach-button');
  if (await page.locator('#attach-menu').isVisible()) await page.click('#attach-files');
  await (await chooser).setFiles(files);
}

/** Waits until every file in the tray is uploaded. */
async function uploaded(page, count) {
  await page.waitForFunction((n) => {
    const items = [...document.querySelectorAll('#upload-tray .upload-item')];
    return items.length === n && items.every((item) => item.dataset.state === 'done');
  }, count);
}

/** The newest message row in the timeline with attachments. */
const newest = (page, selector) => page.locator(`#message-rows .row:has(${selector})`).last();

/** Waits for every thumbnail of a row to be loaded and decoded; returns their natural widths. */
async function thumbnailsLoaded(row) {
  await row.locator('.att-image').first().waitFor();
  await row.evaluate((el) => Promise.all([...el.querySelectorAll('img.att-thumb')].map((img) => (img.complete && img.naturalWidth ? null : new Promise((r) => img.addEventListener('load', r, { once: true }))))));
  return row.locator('img.att-thumb').evaluateAll((imgs) => imgs.map((img) => img.naturalWidth));
}

test('images by the attach button, by drag and drop and by paste; the other side sees thumbnails and browses them in the viewer', async () => {
  const { a, b, room } = await pair();
  // 1. The attach button, with a caption.
  await attachByButton(a.page, [{ name: 'launch.png', mimeType: 'image/png', buffer: picture(800, 600) }]);
  await a.page.locator('#upload-tray .upload-item .upload-thumb').waitFor();
  await uploaded(a.page, 1);
  await shot(a.page, 'tray-uploaded-zh-light-desktop');
  await a.page.fill('#composer-input', 'Launch pad 发射台');
  await a.page.press('#composer-input', 'Enter');
  await a.page.locator('#upload-tray').waitFor({ state: 'hidden' });
  const first = newest(b.page, '.att-image');
  await first.locator('.caption', { hasText: 'Launch pad 发射台' }).waitFor();
  const widths = await thumbnailsLoaded(first);
  assert.ok(widths[0] > 0, 'the thumbnail decoded');
  assert.ok(widths[0] <= 320, `the timeline loads the small thumbnail (${widths[0]} px)`);
  // The box keeps the picture's 4:3 shape.
  const box = await first.locator('.att-image').boundingBox();
  assert.ok(Math.abs(box.width / box.height - 4 / 3) < 0.03, `box ${box.width}×${box.height}`);
  await newest(a.page, '.att-image').locator('.att-image.loaded').waitFor();

  // 2. Dropped onto the conversation: two pictures, sent without a caption.
  const dropped = await dataTransfer(a.page, [
    { name: 'left.png', mimeType: 'image/png', buffer: picture(600, 400, [22, 163, 74], [250, 204, 21]) },
    { name: 'right.png', mimeType: 'image/png', buffer: picture(400, 600, [190, 24, 93], [14, 165, 233]) },
  ]);
  await a.page.dispatchEvent('#messages', 'dragenter', { dataTransfer: dropped });
  await a.page.dispatchEvent('#messages', 'dragover', { dataTransfer: dropped });
  await a.page.locator('#drop-overlay').waitFor();
  await shot(a.page, 'drop-overlay-zh-light-desktop');
  await a.page.dispatchEvent('#messages', 'drop', { dataTransfer: dropped });
  await a.page.locator('#drop-overlay').waitFor({ state: 'hidden' });
  await uploaded(a.page, 2);
  await a.page.press('#composer-input', 'Enter');
  const grid = newest(b.page, '.att-images.grid');
  await grid.waitFor();
  assert.equal((await thumbnailsLoaded(grid)).filter((w) => w > 0).length, 2, 'both thumbnails decoded');

  // 3. Pasted into the message box (a screenshot from the clipboard).
  const clip = await dataTransfer(a.page, [{ name: 'image.png', mimeType: 'image/png', buffer: picture(500, 500, [124, 58, 237], [255, 255, 255]) }]);
  await a.page.locator('#composer-input').evaluate((input, transfer) => {
    input.focus();
    input.dispatchEvent(new ClipboardEvent('paste', { clipboardData: transfer, bubbles: true, cancelable: true }));
  }, clip);
  await uploaded(a.page, 1);
  await a.page.press('#composer-input', 'Enter');
  await b.page.waitForFunction(() => document.querySelectorAll('#message-rows .att-image.loaded').length >= 4);
  await shot(b.page, 'timeline-images-zh-light-desktop');

  // Bob's room list names the last one.
  await b.page.locator(`.room-item[data-room="${room.room_id}"] .room-preview`, { hasText: '爱丽丝: 📷 图片' }).waitFor();

  // The viewer: the grid's first picture, → to the second, zoom, Escape.
  const tile = grid.locator('.att-image').first();
  await tile.click();
  const viewer = b.page.locator('dialog.lightbox[open]');
  await viewer.locator('.lb-stage.loaded').waitFor();
  assert.equal(await viewer.locator('.lb-counter').textContent(), '第 1 张，共 2 张');
  assert.match(await viewer.locator('.lb-img').getAttribute('src'), /\/preview\/$/, 'the viewer shows the preview size');
  assert.match(await viewer.locator('.lb-download').getAttribute('href'), /\?download=1$/);
  await shot(b.page, 'lightbox-zh-light-desktop');
  await b.page.keyboard.press('ArrowRight');
  await viewer.locator('.lb-counter', { hasText: '第 2 张，共 2 张' }).waitFor();
  await viewer.locator('.lb-stage.loaded').waitFor();
  assert.equal(await viewer.locator('.lb-name').textContent(), 'right.png');
  await b.page.keyboard.press('ArrowRight');
  assert.equal(await viewer.locator('.lb-counter').textContent(), '第 2 张，共 2 张', 'no further than the last');
  await b.page.keyboard.press('ArrowLeft');
  await viewer.locator('.lb-counter', { hasText: '第 1 张' }).waitFor();
  await viewer.locator('.lb-zoom').click();
  await b.page.locator('dialog.lightbox.zoomed .lb-stage.loaded').waitFor();
  assert.doesNotMatch(await viewer.locator('.lb-img').getAttribute('src'), /preview/, 'zoomed: the full picture');
  // Tab stays inside the viewer.
  for (let i = 0; i < 6; i += 1) await b.page.keyboard.press('Tab');
  assert.ok(await viewer.evaluate((d) => d.contains(document.activeElement)), 'focus stays in the viewer');
  assert.deepEqual(await seriousViolations(b.page, 'dialog.lightbox'), [], 'axe: the viewer');
  await b.page.keyboard.press('Escape');
  await viewer.waitFor({ state: 'detached' });
  assert.ok(await tile.evaluate((el) => el === document.activeElement), 'focus is back on the picture');
  assert.deepEqual(await seriousViolations(b.page, '#messages'), [], 'axe: the timeline with pictures');
  for (const page of [a.page, b.page]) assert.deepEqual(page.errors, []);
  await a.context.close();
  await b.context.close();
});

test('a file goes as a card with its size and downloads with its bytes and name', async () => {
  const { a, b, room } = await pair();
  const bytes = Buffer.concat([Buffer.from('%PDF-1.4\n'), randomBytes(48 * 1024)]);
  await attachByButton(a.page, [{ name: 'Quarterly report 季度报告.pdf', mimeType: 'application/pdf', buffer: bytes }]);
  await uploaded(a.page, 1);
  await a.page.fill('#composer-input', 'the report');
  await a.page.press('#composer-input', 'Enter');
  const card = newest(b.page, '.att-file').locator('.att-file');
  await card.waitFor();
  assert.equal(await card.locator('.att-file-name').textContent(), 'Quarterly report 季度报告.pdf');
  assert.equal(await card.locator('.att-file-size').textContent(), '48 kB');
  await shot(b.page, 'file-card-zh-light-desktop');
  const [download] = await Promise.all([b.page.waitForEvent('download'), card.click()]);
  assert.equal(download.suggestedFilename(), 'Quarterly report 季度报告.pdf');
  assert.ok(readFileSync(await download.path()).equals(bytes), 'the same bytes');
  await b.page.locator(`.room-item[data-room="${room.room_id}"] .room-preview`, { hasText: '📎 Quarterly report 季度报告.pdf · the report' }).waitFor();
  for (const page of [a.page, b.page]) assert.deepEqual(page.errors, []);
  await a.context.close();
  await b.context.close();
});

test('a voice message: recorded with a live level, previewed, sent, and played on the other side', async () => {
  const { a, b, room } = await pair(server, { bobOptions: phone });
  // Bob, on a phone, starts at the room list: into the room.
  await b.page.goto(`${server.url}/tools/chat/enhanced/${room.room_id}/`);
  await b.page.locator('#conn-pill[data-state="connected"]').waitFor();
  await a.page.click('#record-button');
  const recorder = a.page.locator('#recorder');
  await recorder.locator('.rec-timer').waitFor();
  assert.ok(await a.page.locator('#composer').isHidden(), 'the recorder stands in for the composer');
  await a.page.waitForFunction(() => document.querySelector('.rec-timer')?.textContent === '0:02', null, { timeout: 10000 });
  // The fake microphone's beeps move the level meter.
  await a.page.waitForFunction(() => /scaleX\((0\.[1-9]|1)/.test(document.querySelector('.rec-meter-fill')?.style.transform ?? ''), null, { timeout: 5000 });
  await shot(a.page, 'voice-recording-zh-light-desktop');
  await recorder.locator('.rec-stop').click();
  await recorder.locator('.voice').waitFor();
  await shot(a.page, 'voice-preview-zh-light-desktop');
  // The preview plays the recording itself.
  await recorder.locator('.voice-play').click();
  await a.page.waitForFunction(() => Number(document.querySelector('#recorder .voice')?.dataset.position) > 0.2);
  await recorder.locator('.rec-send').click();
  await recorder.waitFor({ state: 'hidden' });
  assert.ok(await a.page.locator('#composer').isVisible(), 'the composer is back');

  const voice = newest(b.page, '.voice').locator('.voice');
  await voice.waitFor();
  const time = await voice.locator('.voice-time').textContent();
  assert.match(time, /^0:0[2-3]$/, `the duration shown (${time})`);
  // The waveform came up with it: bars of different heights.
  const heights = await voice.locator('.voice-bar').evaluateAll((bars) => bars.map((bar) => bar.style.height));
  assert.equal(heights.length, 40);
  assert.ok(new Set(heights).size > 3, 'a waveform, not a flat line');
  await voice.locator('.voice-play').tap();
  await b.page.waitForFunction(() => Number(document.querySelector('#message-rows .voice')?.dataset.position) > 0.5, null, { timeout: 10000 });
  assert.equal(await voice.getAttribute('data-state'), 'playing');
  assert.equal(await voice.locator('.voice-play').getAttribute('aria-label'), '暂停');
  await b.page.locator('#message-rows .voice .voice-bar.played').first().waitFor();
  await shot(b.page, 'voice-playing-zh-light-phone');
  await b.page.waitForFunction(() => document.querySelector('#message-rows .voice')?.dataset.state === 'paused', null, { timeout: 10000 });
  // The room list (Bob's phone: back to the list) says what it is.
  await b.page.locator('#open-rooms').tap();
  await b.page.locator(`.room-item[data-room="${room.room_id}"] .room-preview`, { hasText: /爱丽丝: 🎤 语音消息 0:0[2-3]/ }).waitFor();
  const stored = (await api(a.page, 'GET', `/chat/${room.room_id}/messages/?limit=50`)).messages.filter((m) => m.message_type === 'voice');
  assert.equal(stored.length, 1);
  assert.equal(stored[0].attachments[0].waveform.length, 64);
  assert.ok(stored[0].attachments[0].duration_ms >= 1500 && stored[0].attachments[0].duration_ms < 4000, `duration_ms ${stored[0].attachments[0].duration_ms}`);
  for (const page of [a.page, b.page]) assert.deepEqual(page.errors, []);
  await a.context.close();
  await b.context.close();
});

test('an upload in progress survives a WebSocket reconnect, and Send waits for it', async () => {
  const a = await newUserContext(browser, server);
  const b = await newUserContext(browser, server);
  const sockets = new Set();
  await a.context.routeWebSocket(/\/ws\//, (ws) => {
    sockets.add(ws);
    ws.connectToServer();
  });
  await register(a.page, server, { displayName: 'Slow Sue' });
  const bob = await register(b.page, server, { displayName: 'Bob' });
  const room = await api(a.page, 'POST', '/chat/rooms/', { name: 'Slow line', room_type: 'group', members: [bob.id] });
  await openRoom(a.page, server, room.room_id);
  await openRoom(b.page, server, room.room_id);
  // A slow uplink: about 2 s for the file.
  const cdp = await a.context.newCDPSession(a.page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 200 * 1024 });
  const bytes = Buffer.concat([Buffer.from('PK\u0003\u0004'), randomBytes(400 * 1024)]);
  await attachByButton(a.page, [{ name: 'backup.zip', mimeType: 'application/zip', buffer: bytes }]);
  await a.page.waitForFunction(() => Number(document.querySelector('#upload-tray progress')?.value) > 0);
  await shot(a.page, 'tray-progress-zh-light-desktop');
  // Send while it uploads: the message waits for the file.
  await a.page.fill('#composer-input', 'sent after the upload');
  await a.page.press('#composer-input', 'Enter');
  await a.page.locator('#upload-tray .upload-status', { hasText: '上传完成后将立即发送' }).waitFor();
  // The socket drops and comes back; the upload carries on.
  for (const ws of sockets) await ws.close({ code: 1011 });
  await a.page.waitForFunction(() => document.querySelector('#conn-pill').dataset.state !== 'connected');
  assert.equal(await a.page.locator('#upload-tray .upload-item').count(), 1, 'the tray keeps the file');
  await a.page.locator('#conn-pill[data-state="connected"]').waitFor({ timeout: 20000 });
  const card = newest(b.page, '.att-file');
  await card.locator('.caption', { hasText: 'sent after the upload' }).waitFor({ timeout: 20000 });
  assert.equal(await card.locator('.att-file-name').textContent(), 'backup.zip');
  await a.page.locator('#upload-tray').waitFor({ state: 'hidden' });
  assert.equal(await a.page.inputValue('#composer-input'), '', 'the caption went with it');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  for (const page of [a.page, b.page]) assert.deepEqual(page.errors, []);
  await a.context.close();
  await b.context.close();
});

test('a file over the server limit says so, with the limit, and nothing is sent', async () => {
  const { a, room } = await pair(small);
  await attachByButton(a.page, [
    { name: 'too-big.bin', mimeType: 'application/octet-stream', buffer: randomBytes(SMALL_LIMIT + 50000) },
    { name: 'ok.png', mimeType: 'image/png', buffer: picture(64, 64) },
  ]);
  const failed = a.page.locator('#upload-tray .upload-item[data-state="error"]');
  await failed.waitFor();
  assert.match(await failed.locator('.upload-error').textContent(), /文件太大：单个文件最大 98 kB/);
  assert.equal(await failed.locator('.upload-retry').count(), 0, 'no retry for a file that cannot fit');
  await a.page.locator('#upload-tray .upload-item[data-state="done"]').waitFor();
  await shot(a.page, 'tray-too-large-zh-light-desktop');
  // Send with a failed file says what to do and sends nothing.
  await a.page.fill('#composer-input', 'not yet');
  await a.page.press('#composer-input', 'Enter');
  await a.page.locator('.toast', { hasText: '有文件上传失败' }).waitFor();
  assert.equal(await a.page.locator('#pending-rows .row').count(), 0);
  assert.equal(await a.page.inputValue('#composer-input'), 'not yet');
  const before = (await api(a.page, 'GET', `/chat/${room.room_id}/messages/?limit=50`)).messages.filter((m) => m.message_type !== 'system');
  assert.equal(before.length, 0, 'nothing was sent');
  // The server says the same when asked directly (no check in the page first).
  const refused = await a.page.evaluate(async ({ roomId, size }) => {
    const body = new FormData();
    body.append('file', new Blob([new Uint8Array(size)]), 'direct.bin');
    const csrf = decodeURIComponent(document.cookie.match(/csrftoken=([^;]+)/)[1]);
    const response = await fetch(`/tools/api/chat/${roomId}/uploads/`, { method: 'POST', body, headers: { 'X-CSRFToken': csrf } });
    return { status: response.status, code: (await response.json()).error?.code };
  }, { roomId: room.room_id, size: SMALL_LIMIT + 1 });
  assert.deepEqual(refused, { status: 413, code: 'file_too_large' });
  // Removing the failed file lets the rest go.
  await failed.locator('.upload-remove').click();
  await a.page.press('#composer-input', 'Enter');
  await newest(a.page, '.att-image').locator('.caption', { hasText: 'not yet' }).waitFor();
  assert.deepEqual(a.page.errors, []);
  await a.context.close();
});

// Every state once more in each look, at desktop and phone size.
const LOOKS = [
  { lang: 'zh-CN', style: 'light', axe: true },
  { lang: 'zh-CN', style: 'dark' },
  { lang: 'en', style: 'light' },
  { lang: 'en', style: 'dark', axe: true },
];

test('screenshots of every state: zh-CN and English, light and dark, desktop and phone; axe finds nothing serious', async () => {
  const { a, b, alice, room } = await pair(server, { name: 'Mars plan 火星计划' });
  const aliceToken = await apiToken(server, alice.username, alice.password);
  // Bob sends one of everything: a picture, three pictures, a file, a video, a voice message.
  const send = async (files, caption = '') => {
    await attachByButton(b.page, files);
    await uploaded(b.page, files.length);
    if (caption) await b.page.fill('#composer-input', caption);
    await b.page.press('#composer-input', 'Enter');
    await b.page.locator('#upload-tray').waitFor({ state: 'hidden' });
  };
  await send([{ name: 'rocket.png', mimeType: 'image/png', buffer: picture(1200, 800) }], 'Landing site 着陆点 🚀');
  await send([
    { name: 'a.png', mimeType: 'image/png', buffer: picture(300, 300, [22, 163, 74], [250, 204, 21]) },
    { name: 'b.png', mimeType: 'image/png', buffer: picture(300, 500, [190, 24, 93], [14, 165, 233]) },
    { name: 'c.png', mimeType: 'image/png', buffer: picture(500, 300, [124, 58, 237], [255, 255, 255]) },
  ]);
  await send([{ name: 'telemetry-2026-12-06.csv', mimeType: 'text/csv', buffer: Buffer.from('t,alt\n0,0\n1,12\n'.repeat(2000)) }]);
  // A real WebM from the fake camera, as a phone's camera would give.
  const webm = Buffer.from(
    await b.page.evaluate(async () => {
      const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 } });
      const recorder = new MediaRecorder(stream, { mimeType: 'video/webm' });
      const chunks = [];
      recorder.ondataavailable = (e) => chunks.push(e.data);
      const done = new Promise((r) => (recorder.onstop = r));
      recorder.start(100);
      await new Promise((r) => setTimeout(r, 1200));
      recorder.stop();
      await done;
      for (const track of stream.getTracks()) track.stop();
      const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
      let text = '';
      for (const byte of bytes) text += String.fromCharCode(byte);
      return btoa(text);
    }),
    'base64',
  );
  await send([{ name: 'countdown.webm', mimeType: 'video/webm', buffer: webm }], 'T-minus 10');
  await b.page.click('#record-button');
  await b.page.waitForFunction(() => document.querySelector('.rec-timer')?.textContent === '0:01', null, { timeout: 10000 });
  await b.page.click('.rec-stop');
  await b.page.click('.rec-send');
  await b.page.locator('#recorder').waitFor({ state: 'hidden' });
  await b.page.locator('#message-rows .voice').waitFor();
  const messages = (await apiCall(server, aliceToken, 'GET', `/chat/${room.room_id}/messages/?limit=50`)).messages.filter((m) => m.message_type !== 'system');
  assert.deepEqual(messages.map((m) => m.message_type), ['image', 'image', 'file', 'video', 'voice']);
  await b.context.close();
  await a.context.close();

  const problems = [];
  for (const look of LOOKS) {
    await apiCall(server, aliceToken, 'PATCH', '/user/me/profile/', { language: look.lang, theme: look.style });
    for (const [size, options] of [['desktop', { viewport: { width: 1280, height: 800 } }], ['phone', phone]]) {
      const name = (state) => `${state}-${look.lang}-${look.style}-${size}`;
      const user = await newUserContext(browser, server, { ...options, locale: look.lang, colorScheme: look.style });
      const page = user.page;
      await page.goto(`${server.url}/login`);
      await page.fill('#username', alice.username);
      await page.fill('#password', alice.password);
      await page.click('form button[type=submit]');
      await page.waitForURL((url) => url.pathname === '/' || url.pathname.startsWith('/tools/chat/enhanced/'));
      if (size === 'phone') {
        await page.locator(`.room-item[data-room="${room.room_id}"] .room-preview`).waitFor();
        assert.match(await page.locator(`.room-item[data-room="${room.room_id}"] .room-preview`).textContent(), look.lang === 'en' ? /Bob: 🎤 Voice message 0:0\d/ : /Bob: 🎤 语音消息 0:0\d/);
        await page.screenshot({ path: join(dir, `${name('room-list')}.png`) });
      }
      await openRoom(page, server, room.room_id);
      await page.evaluate(() => document.fonts.ready);
      await page.waitForFunction(() => [...document.querySelectorAll('#message-rows img.att-thumb')].every((img) => img.complete && img.naturalWidth > 0));
      await page.locator('#messages').evaluate((el) => (el.scrollTop = el.scrollHeight));
      await shot(page, name('timeline'));
      await page.locator('#message-rows .att-image').first().scrollIntoViewIfNeeded();
      await shot(page, name('timeline-pictures'));
      if (look.axe) for (const found of await seriousViolations(page)) problems.push(`${name('timeline')}: ${found}`);
      // The viewer on the three pictures, at the second.
      await page.locator('#message-rows .att-images.grid .att-image').nth(1).click();
      await page.locator('dialog.lightbox .lb-stage.loaded').waitFor();
      await shot(page, name('lightbox'));
      if (look.axe) for (const found of await seriousViolations(page)) problems.push(`${name('lightbox')}: ${found}`);
      await page.keyboard.press('Escape');
      await page.locator('dialog.lightbox').waitFor({ state: 'detached' });
      // The tray: one uploaded picture, one refused empty file.
      await attachByButton(page, [
        { name: 'selfie.png', mimeType: 'image/png', buffer: picture(480, 640) },
        { name: 'empty.txt', mimeType: 'text/plain', buffer: Buffer.alloc(0) },
      ]);
      await page.locator('#upload-tray .upload-item[data-state="error"]').waitFor();
      await page.locator('#upload-tray .upload-item[data-state="done"]').waitFor();
      await page.fill('#composer-input', look.lang === 'en' ? 'My best side' : '我最好看的一面');
      if (size === 'phone') {
        // The attach menu on a touch screen: the camera or files.
        await page.click('#attach-button');
        await page.locator('#attach-menu').waitFor();
        await shot(page, name('attach-menu'));
        await page.keyboard.press('Escape');
        await page.locator('#attach-menu').waitFor({ state: 'hidden' });
      }
      await shot(page, name('tray'));
      if (look.axe) for (const found of await seriousViolations(page, '.composer-area')) problems.push(`${name('tray')}: ${found}`);
      while (await page.locator('#upload-tray .upload-remove').count()) await page.locator('#upload-tray .upload-remove').first().click();
      await page.fill('#composer-input', '');
      // The recorder, recording.
      await page.click('#record-button');
      await page.waitForFunction(() => document.querySelector('.rec-timer')?.textContent === '0:01', null, { timeout: 10000 });
      await shot(page, name('recording'));
      if (look.axe) for (const found of await seriousViolations(page, '#recorder')) problems.push(`${name('recording')}: ${found}`);
      await page.click('.rec-stop');
      await page.locator('#recorder .voice').waitFor();
      await shot(page, name('voice-preview'));
      await page.click('.rec-delete');
      await page.locator('#recorder').waitFor({ state: 'hidden' });
      assert.deepEqual(page.errors, [], `page errors: ${name('')}`);
      await user.context.close();
    }
  }
  await apiCall(server, aliceToken, 'PATCH', '/user/me/profile/', { language: 'zh-CN', theme: 'light' });
  assert.deepEqual(problems, []);
});
