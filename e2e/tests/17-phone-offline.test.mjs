// Issue 16, points 3 and 4: a phone starts at the room list and its back
// button counts unread messages elsewhere; a portrait tablet has two columns;
// skeletons while loading; while disconnected presence is unknown, a message
// waits for the connection and is delivered once, and the header keeps its
// height; a refused message keeps its failed state and Retry across a reload;
// without JavaScript the app says it needs it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, newUserContext, register, apiToken, apiCall, screenshot, seriousViolations, pageApi as api } from '../lib/harness.mjs';

let server;
let browser;
const phone = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const tablet = { viewport: { width: 768, height: 1024 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
before(async () => {
  server = await new Server().start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Language and style through the profile (the page reloads to show them). */
async function setLook(page, { language, style }) {
  await api(page, 'PATCH', '/user/me/profile/', { language, theme: style });
  await page.reload();
  await page.locator('#conn-pill[data-state="connected"]').waitFor({ state: 'attached' });
}

/** Messages of a room with this content, as the server stores them. */
async function stored(token, room, content) {
  const page = await apiCall(server, token, 'GET', `/chat/${room}/messages/?limit=200`);
  return page.messages.filter((m) => m.content === content);
}

/** The subtitle's parts: each either whole on its one line or wrapped out of sight, never cut. */
async function subtitleParts(page) {
  return page.locator('#room-subtitle').evaluate((el) => {
    const box = el.getBoundingClientRect();
    return [...el.querySelectorAll('.part')]
      .filter((part) => getComputedStyle(part).display !== 'none')
      .map((part) => {
        const r = part.getBoundingClientRect();
        const shown = r.top < box.bottom - 1;
        return { text: part.textContent, shown, whole: !shown || (r.left >= box.left - 1 && r.right <= box.right + 1) };
      });
  });
}

/** Waits until the page is connected again, pressing "retry now" whenever it shows. */
async function reconnected(page) {
  await page.waitForFunction(
    () => {
      const retry = document.querySelector('#retry-now');
      if (retry && !retry.hidden) retry.click();
      return document.querySelector('#conn-pill').dataset.state === 'connected';
    },
    null,
    { polling: 250, timeout: 40000 },
  );
}

async function headerHeight(page) {
  return page.locator('.chat-head').evaluate((el) => el.getBoundingClientRect().height);
}

test('a phone starts at the room list; the back button counts unread messages in the other rooms', async () => {
  const { page } = await newUserContext(browser, server, phone);
  const alice = await register(page, server, { displayName: 'Alice' });
  const bobPage = await newUserContext(browser, server);
  const bob = await register(bobPage.page, server, { displayName: 'Bob' });
  await bobPage.context.close();
  const token = await apiToken(server, bob.username, bob.password);

  // The start screen: the room list, the chat hidden, the URL still /.
  assert.equal(new URL(page.url()).pathname, '/');
  await page.locator('#rooms-panel .room-item', { hasText: 'general' }).waitFor();
  assert.equal(await page.locator('#chat').isVisible(), false, 'no room is open');
  await apiCall(server, token, 'POST', '/chat/general/send/', { content: 'hello from bob', client_id: 'phone-1' });
  await page.locator('.room-item.unread', { hasText: 'general' }).locator('.unread-badge', { hasText: '1' }).waitFor();
  await screenshot(page, 'phone-start-list-zh-light');
  assert.deepEqual(await seriousViolations(page), [], 'the phone room list');

  // Tapping a room opens it; the other room's messages show on the back button, live.
  await page.locator('.room-item', { hasText: 'general' }).tap();
  await page.waitForURL(/\/tools\/chat\/enhanced\/general\/$/);
  await page.locator('#message-rows .bubble', { hasText: 'hello from bob' }).waitFor();
  assert.equal(await page.locator('#rooms-panel').isVisible(), false);
  await page.locator('#room-subtitle .part', { hasText: '在线' }).waitFor();
  const parts = await subtitleParts(page);
  assert.ok(parts.length >= 2 && parts[0].shown, JSON.stringify(parts));
  for (const part of parts) assert.ok(part.whole, `subtitle part "${part.text}" is whole or hidden`);
  assert.equal(await page.locator('#room-subtitle').evaluate((el) => getComputedStyle(el).textOverflow), 'clip');
  const back = page.locator('#open-rooms');
  assert.equal(await page.locator('#back-badge').isVisible(), false, 'nothing unread elsewhere yet');
  const dm = await apiCall(server, token, 'POST', `/chat/direct/${alice.id}/`);
  await apiCall(server, token, 'POST', `/chat/${dm.room_id}/send/`, { content: 'psst', client_id: 'phone-2' });
  await apiCall(server, token, 'POST', `/chat/${dm.room_id}/send/`, { content: 'are you there?', client_id: 'phone-3' });
  await page.locator('#back-badge', { hasText: '2' }).waitFor();
  assert.match(await back.getAttribute('aria-label'), /2/);
  // A message in the open room does not count.
  await apiCall(server, token, 'POST', '/chat/general/send/', { content: 'in the open room', client_id: 'phone-4' });
  await page.locator('#message-rows .bubble', { hasText: 'in the open room' }).waitFor();
  assert.equal(await page.locator('#back-badge').textContent(), '2');
  await screenshot(page, 'phone-back-badge-zh-light');
  assert.deepEqual(await seriousViolations(page), [], 'a phone room with the back badge');

  // The browser's back button returns to the list, and so does ours.
  await page.goBack();
  const dmItem = page.locator(`.room-item[data-room="${dm.room_id}"]`);
  await dmItem.waitFor();
  assert.equal(new URL(page.url()).pathname, '/');
  assert.equal(await page.locator('#chat').isVisible(), false);
  await dmItem.tap();
  await page.locator('#message-rows .bubble', { hasText: 'are you there?' }).waitFor();
  await page.locator('#back-badge').waitFor({ state: 'hidden' });
  await back.tap();
  await page.locator('#rooms-panel .room-item', { hasText: 'general' }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/');

  // A link to a room opens that room.
  await page.goto(`${server.url}/tools/chat/enhanced/general/`);
  await page.locator('#message-rows .bubble', { hasText: 'in the open room' }).waitFor();
  assert.equal(await page.locator('#rooms-panel').isVisible(), false);
  await back.tap();
  await page.locator('#rooms-panel .room-item', { hasText: 'general' }).waitFor();

  // The other looks: English, dark.
  await setLook(page, { language: 'en', style: 'dark' });
  await page.locator('#rooms-panel .room-item', { hasText: 'general' }).waitFor();
  await apiCall(server, token, 'POST', `/chat/${dm.room_id}/send/`, { content: 'one more', client_id: 'phone-5' });
  await page.locator(`.room-item.unread[data-room="${dm.room_id}"]`).waitFor();
  await screenshot(page, 'phone-start-list-en-dark');
  await page.locator('.room-item', { hasText: 'general' }).tap();
  await page.locator('#back-badge', { hasText: '1' }).waitFor();
  assert.match(await back.getAttribute('aria-label'), /Back to rooms, 1 unread/);
  await screenshot(page, 'phone-back-badge-en-dark');
  assert.deepEqual(page.errors, []);
});

test('a 768 px portrait tablet has two columns; 1024 and 1280 have three', async () => {
  const { page } = await newUserContext(browser, server, tablet);
  await register(page, server, { displayName: 'Tabby' });
  await page.locator('#message-rows .row:not(.run-member)').first().waitFor();
  const box = async (selector) => (await page.locator(selector).isVisible() ? page.locator(selector).boundingBox() : null);
  const rooms = await box('#rooms-panel');
  const chat = await box('#chat');
  assert.ok(rooms && chat, 'room list and chat are both shown');
  assert.ok(rooms.x + rooms.width <= chat.x, 'side by side');
  assert.ok(chat.width >= 400, `the chat is ${chat.width}px wide`);
  assert.equal(await page.locator('#participants-panel').isVisible(), false, 'participants are a drawer');
  assert.equal(await page.locator('#open-rooms').isVisible(), false, 'no back button');
  await page.locator('#toggle-participants').tap();
  await page.locator('#participants .participant').first().waitFor({ state: 'visible' });
  await page.keyboard.press('Escape');
  await page.locator('#participants-panel').waitFor({ state: 'hidden' });
  await screenshot(page, 'phone-tablet-768-zh-light');
  await setLook(page, { language: 'en', style: 'dark' });
  await page.locator('#message-rows .row:not(.run-member)').first().waitFor();
  await screenshot(page, 'phone-tablet-768-en-dark');

  for (const width of [1024, 1280]) {
    await page.setViewportSize({ width, height: 800 });
    await page.locator('#participants-panel').waitFor({ state: 'visible' });
    const [r, c, p] = [await box('#rooms-panel'), await box('#chat'), await box('#participants-panel')];
    assert.ok(r.x + r.width <= c.x && c.x + c.width <= p.x, `three columns at ${width}px`);
  }
  assert.deepEqual(page.errors, []);
});

test('skeletons show while the first data load; the composer stays; still with reduced motion', async () => {
  const { page, context } = await newUserContext(browser, server, { ...phone, reducedMotion: 'reduce' });
  await register(page, server);
  // Hold back the room list and the room's messages as a slow network would.
  let release;
  let gate;
  const hold = () => {
    gate = new Promise((resolve) => {
      release = resolve;
    });
  };
  hold();
  await context.route(/\/tools\/api\/chat\/(rooms\/|general\/messages\/)/, async (route) => {
    await gate;
    await route.continue();
  });
  await page.goto(`${server.url}/`);
  await page.locator('#room-list .skeleton-room').first().waitFor();
  assert.equal(await page.locator('#room-list .skeleton-room').count(), 6);
  assert.equal(await page.locator('.sk-line').first().evaluate((el) => getComputedStyle(el).animationName), 'none');
  await screenshot(page, 'phone-skeleton-rooms');
  await page.goto(`${server.url}/tools/chat/enhanced/general/`);
  await page.locator('#message-rows .skeleton-msg').first().waitFor();
  assert.ok(await page.locator('#composer').isVisible(), 'the composer is there while loading');
  await screenshot(page, 'phone-skeleton-timeline');
  release();
  await page.locator('#message-rows .row:not(.run-member)').first().waitFor();
  assert.equal(await page.locator('#message-rows .skeleton').count(), 0);
  assert.equal(await page.locator('#composer-input').isDisabled(), false);

  // With motion allowed, the placeholders shimmer.
  await page.emulateMedia({ reducedMotion: 'no-preference' });
  hold();
  await page.goto(`${server.url}/`);
  await page.locator('#room-list .skeleton-room').first().waitFor();
  assert.equal(await page.locator('.sk-line').first().evaluate((el) => getComputedStyle(el).animationName), 'sk-shimmer');
  release();
  assert.deepEqual(page.errors, []);
});

test('while disconnected: presence unknown, a message waits and goes once, the header keeps its height', async () => {
  const a = await newUserContext(browser, server, phone);
  const b = await newUserContext(browser, server);
  const c = await newUserContext(browser, server, tablet);
  const alice = await register(a.page, server, { displayName: 'Olive' });
  await register(b.page, server, { displayName: 'Bert' });
  await register(c.page, server, { displayName: 'Cleo' });
  await a.page.locator('.room-item', { hasText: 'general' }).tap();
  await a.page.locator('#participants .participant[data-online="true"]', { hasText: 'Bert' }).waitFor({ state: 'attached' });
  await b.page.locator('#participants .participant[data-online="true"]', { hasText: 'Olive' }).waitFor();
  await a.page.locator('#room-subtitle .part', { hasText: /在线/ }).waitFor();
  await setLook(c.page, { language: 'en', style: 'dark' });
  await c.page.locator('#participants .participant', { hasText: 'Bert' }).waitFor({ state: 'attached' });
  const heights = { a: await headerHeight(a.page), b: await headerHeight(b.page), c: await headerHeight(c.page) };

  await server.kill();
  for (const page of [a.page, b.page, c.page]) await page.locator('#retry-now').waitFor();
  // Presence is unknown now: not green, said in words, no "online" count.
  const bert = a.page.locator('#participants .participant', { hasText: 'Bert' });
  await a.page.locator('#participants .participant[data-online="unknown"]', { hasText: 'Bert' }).waitFor({ state: 'attached' });
  assert.match(await bert.getAttribute('aria-label'), /无法得知/);
  assert.equal(await bert.locator('.status-dot.online').count(), 0);
  assert.equal(await b.page.locator('#participants .status-dot.online').count(), 0);
  assert.doesNotMatch(await b.page.locator('#room-subtitle').textContent(), /在线/);
  assert.match(await b.page.locator('#participant-count').textContent(), /^\d+$/);
  // On a phone the words show under the room's name; the retry button is an icon.
  await a.page.locator('#room-conn', { hasText: /重连|离线|连接/ }).waitFor();
  assert.equal(await a.page.locator('#room-subtitle').isVisible(), false);
  // The header did not change height anywhere.
  assert.equal(await headerHeight(a.page), heights.a, 'phone header height');
  assert.equal(await headerHeight(b.page), heights.b, 'desktop header height');
  assert.equal(await headerHeight(c.page), heights.c, 'tablet header height');

  // A message written now waits for the connection.
  await a.page.fill('#composer-input', 'written while offline');
  await a.page.press('#composer-input', 'Enter');
  const waiting = a.page.locator('#pending-rows .msg[data-state="waiting"]', { hasText: 'written while offline' });
  await waiting.waitFor();
  assert.match(await waiting.innerText(), /等待连接/);
  await screenshot(a.page, 'phone-offline-zh-light');
  assert.deepEqual(await seriousViolations(a.page), [], 'a phone while offline');
  await c.page.locator('#room-conn', { hasText: /Reconnecting|Offline|Connecting/ }).waitFor();
  await screenshot(c.page, 'phone-tablet-offline-en-dark');
  await c.page.setViewportSize(phone.viewport);
  await screenshot(c.page, 'phone-offline-en-dark');
  await c.page.setViewportSize(tablet.viewport);
  await screenshot(b.page, 'desktop-offline-presence-unknown-zh-light');

  await server.start();
  await reconnected(a.page);
  await a.page.locator('#message-rows .bubble', { hasText: 'written while offline' }).waitFor({ timeout: 20000 });
  await a.page.locator('#pending-rows .msg').waitFor({ state: 'detached' });
  await reconnected(b.page);
  await b.page.locator('#message-rows .bubble', { hasText: 'written while offline' }).waitFor({ timeout: 40000 });
  await b.page.locator('#participants .participant[data-online="true"]', { hasText: 'Olive' }).waitFor();
  await a.page.locator('#room-subtitle .part', { hasText: /在线/ }).waitFor();
  const token = await apiToken(server, alice.username, alice.password);
  assert.equal((await stored(token, 'general', 'written while offline')).length, 1, 'stored once');
  assert.equal(await b.page.locator('#message-rows .bubble', { hasText: 'written while offline' }).count(), 1, 'shown once');
  for (const page of [a.page, b.page, c.page]) assert.deepEqual(page.errors, []);
});

test('a message written while the socket is down waits across a reload, then goes once', async () => {
  const { page, context } = await newUserContext(browser, server, phone);
  // The page's WebSockets pass through a route that can refuse and drop them; HTTP keeps working.
  let refuse = false;
  const sockets = new Set();
  await context.routeWebSocket(/\/ws\//, (ws) => {
    if (refuse) {
      // Accepted by the route, then dropped: the page sees a connection that fails.
      setTimeout(() => ws.close({ code: 1011 }), 50);
      return;
    }
    sockets.add(ws);
    ws.connectToServer();
  });
  const user = await register(page, server, { displayName: 'Wanda' });
  await page.locator('.room-item', { hasText: 'general' }).tap();
  await page.locator('#message-rows .row:not(.run-member)').first().waitFor();
  refuse = true;
  for (const ws of sockets) await ws.close();
  await page.locator('#retry-now').waitFor();
  await page.fill('#composer-input', 'kept across a reload');
  await page.press('#composer-input', 'Enter');
  const row = page.locator('#pending-rows .row', { hasText: 'kept across a reload' });
  await row.locator('.msg[data-state="waiting"]').waitFor();
  const clientId = await row.getAttribute('data-client-id');

  await page.reload();
  await page.locator('#pending-rows .msg[data-state="waiting"]', { hasText: 'kept across a reload' }).waitFor();
  assert.equal(await row.getAttribute('data-client-id'), clientId, 'the same client_id after the reload');
  assert.match(await row.innerText(), /等待连接/);
  assert.equal(await page.locator('#conn-pill').getAttribute('data-state') === 'connected', false);

  refuse = false;
  await reconnected(page);
  await page.locator('#message-rows .bubble', { hasText: 'kept across a reload' }).waitFor({ timeout: 20000 });
  await row.waitFor({ state: 'detached' });
  const token = await apiToken(server, user.username, user.password);
  const copies = await stored(token, 'general', 'kept across a reload');
  assert.equal(copies.length, 1, 'stored once');
  assert.equal(copies[0].client_id, clientId);
  assert.equal(await page.locator('#message-rows .bubble', { hasText: 'kept across a reload' }).count(), 1, 'shown once');
  assert.deepEqual(page.errors, []);
});

test('a refused message keeps its failed state, Retry and Delete after a reload', async () => {
  const e = await newUserContext(browser, server, phone);
  const f = await newUserContext(browser, server);
  const eve = await register(e.page, server, { displayName: 'Eve' });
  const fay = await register(f.page, server, { displayName: 'Fay' });
  const dm = await api(e.page, 'POST', `/chat/direct/${fay.id}/`);
  await api(f.page, 'POST', `/user/${eve.id}/block/`);
  await e.page.goto(`${server.url}/tools/chat/enhanced/${dm.room_id}/`);
  await e.page.locator('#conn-pill[data-state="connected"]').waitFor();
  for (const text of ['please unblock me', 'never mind']) {
    await e.page.fill('#composer-input', text);
    await e.page.press('#composer-input', 'Enter');
    await e.page.locator('#pending-rows .msg.failed', { hasText: text }).waitFor();
  }
  const failed = e.page.locator('#pending-rows .row', { hasText: 'please unblock me' });
  const clientId = await failed.getAttribute('data-client-id');
  assert.ok(clientId);
  const outbox = await e.page.evaluate((key) => JSON.parse(localStorage.getItem(key)), `parley.outbox.${eve.id}`);
  assert.equal(outbox[clientId].state, 'failed');
  assert.equal(outbox[clientId].room, dm.room_id);

  await e.page.reload();
  await e.page.locator('#conn-pill[data-state="connected"]').waitFor();
  await failed.locator('.msg.failed').waitFor();
  assert.equal(await failed.getAttribute('data-client-id'), clientId, 'the same client_id after the reload');
  assert.match(await failed.innerText(), /发送失败 · /);
  await e.page.locator('.toast').first().waitFor({ state: 'detached' });
  await screenshot(e.page, 'phone-failed-zh-light');
  assert.deepEqual(await seriousViolations(e.page), [], 'a failed message');
  await e.page.setViewportSize(tablet.viewport);
  await screenshot(e.page, 'phone-tablet-failed-zh-light');
  await e.page.setViewportSize(phone.viewport);
  // Delete forgets one for good.
  await e.page.locator('#pending-rows .row', { hasText: 'never mind' }).getByRole('button', { name: '删除' }).tap();
  await e.page.locator('#pending-rows .row', { hasText: 'never mind' }).waitFor({ state: 'detached' });

  // Unblocked, Retry sends it, under the same client_id, once.
  await api(f.page, 'DELETE', `/user/${eve.id}/block/`);
  await failed.getByRole('button', { name: '重试' }).tap();
  await e.page.locator('#message-rows .bubble', { hasText: 'please unblock me' }).waitFor();
  await failed.waitFor({ state: 'detached' });
  const token = await apiToken(server, eve.username, eve.password);
  const copies = await stored(token, dm.room_id, 'please unblock me');
  assert.equal(copies.length, 1);
  assert.equal(copies[0].client_id, clientId);
  assert.equal((await stored(token, dm.room_id, 'never mind')).length, 0);
  await e.page.reload();
  await e.page.locator('#message-rows .bubble', { hasText: 'please unblock me' }).waitFor();
  assert.equal(await e.page.locator('#pending-rows .row').count(), 0, 'nothing left in the outbox');
  assert.equal(await e.page.evaluate((key) => localStorage.getItem(key), `parley.outbox.${eve.id}`), null);

  // The failed state in English, dark, and on a tablet.
  await api(f.page, 'POST', `/user/${eve.id}/block/`);
  await setLook(e.page, { language: 'en', style: 'dark' });
  await e.page.fill('#composer-input', 'blocked again');
  await e.page.press('#composer-input', 'Enter');
  await e.page.locator('#pending-rows .msg.failed', { hasText: 'blocked again' }).waitFor();
  await e.page.locator('.toast').first().waitFor({ state: 'detached' });
  assert.match(await e.page.locator('#pending-rows .msg.failed').innerText(), /Not sent · .*Retry.*Delete/s);
  await screenshot(e.page, 'phone-failed-en-dark');
  await e.page.setViewportSize(tablet.viewport);
  await screenshot(e.page, 'phone-tablet-failed-en-dark');
  for (const page of [e.page, f.page]) assert.deepEqual(page.errors, []);
});

test('without JavaScript the app says it needs it, and nothing claims to be connecting', async () => {
  const { page } = await newUserContext(browser, server, { ...phone, locale: 'en-US' });
  const user = await register(page, server);
  const cookies = await page.context().cookies();
  for (const [viewport, language, name, needs] of [
    [phone.viewport, 'en', 'phone-noscript-en', /Parley's chat needs JavaScript/],
    [tablet.viewport, 'zh-CN', 'phone-tablet-noscript-zh', /Parley 聊天需要 JavaScript/],
  ]) {
    await api(page, 'PATCH', '/user/me/profile/', { language });
    const context = await browser.newContext({ javaScriptEnabled: false, viewport });
    await context.addCookies(cookies);
    const nojs = await context.newPage();
    await nojs.goto(`${server.url}/`);
    const note = nojs.locator('#noscript-note');
    await note.waitFor();
    assert.match(await note.innerText(), needs);
    assert.equal(await nojs.locator('#conn-pill').isVisible(), false);
    assert.equal(await nojs.locator('#room-conn').isVisible(), false);
    assert.equal(await nojs.getByText(/Connecting…|连接中…/).first().isVisible(), false);
    assert.equal(await nojs.locator('.skeleton').first().isVisible(), false);
    assert.ok(await note.locator(`a[href="/u/${user.username}"]`).isVisible());
    assert.ok(await note.locator('a[href="/logout"]').isVisible());
    await screenshot(nojs, name);
    await context.close();
  }
});
