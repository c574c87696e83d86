// The first load of the app stays small, assets are cached for ever, and a
// room with 10 000 loaded messages keeps a small DOM.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, newUserContext, register, apiToken, apiCall } from '../lib/harness.mjs';

let server;
let browser;
before(async () => {
  server = await new Server(['--message-rate', '100000', '--message-burst', '100000']).start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the app page loads in at most 150 KB, compressed, with immutable assets', async () => {
  const { page } = await newUserContext(browser, server);
  await register(page, server);
  // A fresh visit with an empty cache.
  const fresh = await browser.newContext();
  await fresh.addCookies(await page.context().cookies());
  const second = await fresh.newPage();
  const list = [];
  second.on('requestfinished', async (request) => {
    const sizes = await request.sizes();
    const response = await request.response();
    list.push({ url: request.url(), bytes: sizes.responseBodySize + sizes.responseHeadersSize, encoding: response?.headers()['content-encoding'], cache: response?.headers()['cache-control'] });
  });
  await second.goto(`${server.url}/`);
  await second.locator('#conn-pill[data-state="connected"]').waitFor();
  await second.locator('#message-rows .row').first().waitFor();
  await second.waitForTimeout(500);
  const counted = list.filter((t) => !t.url.includes('/avatars/'));
  const total = counted.reduce((sum, t) => sum + t.bytes, 0);
  console.log(`first load: ${counted.length} requests, ${(total / 1024).toFixed(1)} KiB`);
  assert.ok(total <= 150 * 1024, `first load is ${total} bytes`);
  for (const t of counted.filter((x) => x.url.includes('/assets/'))) {
    // Release builds serve assets as immutable; debug builds (read from disk) as no-cache.
    assert.match(t.cache ?? '', /immutable|no-cache/, t.url);
    if (t.url.endsWith('.js') || t.url.endsWith('.css')) assert.ok(['br', 'gzip'].includes(t.encoding), `${t.url} is compressed`);
  }
  await fresh.close();
});

test('a room with 10 000 loaded messages keeps the DOM small', async () => {
  const { page } = await newUserContext(browser, server);
  const me = await register(page, server);
  const token = await apiToken(server, me.username, me.password);
  const room = await apiCall(server, token, 'POST', '/chat/rooms/', { name: 'Ten thousand', room_type: 'group' });
  const total = 10000;
  // Seeded over one WebSocket with up to 200 unacknowledged, from a second
  // page of the same session (settings: its CSP allows connecting to the server,
  // and it opens no socket of its own). One HTTP request per message took ~70 s
  // against the debug build in CI.
  const seeder = await page.context().newPage();
  await seeder.goto(`${server.url}/settings`);
  const seeded = await seeder.evaluate(
    async ({ roomId, total }) => {
      const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/ws/chat/${roomId}/`);
      let sent = 0;
      let acked = 0;
      await new Promise((resolve, reject) => {
        const pump = () => {
          for (; sent < total && sent - acked < 200; sent += 1) {
            ws.send(JSON.stringify({ type: 'message', content: `bulk ${sent}`, client_id: `bulk-${sent}` }));
          }
        };
        ws.onopen = pump;
        ws.onerror = () => reject(new Error(`socket error after ${acked} acks`));
        ws.onclose = (e) => reject(new Error(`closed ${e.code} after ${acked} acks`));
        ws.onmessage = (e) => {
          const frame = JSON.parse(e.data);
          if (frame.type === 'error') reject(new Error(e.data));
          if (frame.type !== 'chat_message') return;
          acked += 1;
          if (acked === total) resolve();
          else pump();
        };
      });
      ws.close();
      return acked;
    },
    { roomId: room.room_id, total },
  );
  assert.equal(seeded, total);
  await seeder.close();
  await page.locator('.room-item', { hasText: 'Ten thousand' }).click();
  await page.locator('#message-rows .row').first().waitFor();
  // Scroll to the top until the whole history is loaded.
  const started = Date.now();
  for (let i = 0; i < 400; i += 1) {
    const done = await page.locator('#history-status', { hasText: '这是对话的开始' }).count();
    if (done) break;
    await page.locator('#messages').evaluate((el) => {
      el.scrollTop = 0;
    });
    await page.waitForTimeout(40);
  }
  const loaded = await page.evaluate(() => document.querySelector('#message-rows').children.length);
  await page.locator('#history-status', { hasText: '这是对话的开始' }).waitFor();
  console.log(`scrolled through ${total} messages in ${Date.now() - started} ms; ${loaded} rows in the DOM`);
  assert.ok(loaded <= 220, `${loaded} rows in the DOM`);
  const nodes = await page.evaluate(() => document.getElementsByTagName('*').length);
  assert.ok(nodes < 4000, `${nodes} elements in the page`);
  await page.locator('#jump-latest').click();
  await page.locator('.bubble', { hasText: /^bulk \d+$/ }).last().waitFor();
  assert.deepEqual(page.errors, []);
});
