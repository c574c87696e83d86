// Bans from a room's details (with the admins' list of bans), blocks from a
// profile card and in settings, and a user in more rooms than one page of the
// room list holds still sees every one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, newUserContext, register, screenshot, pageApi as api } from '../lib/harness.mjs';

const phone = { viewport: { width: 375, height: 812 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true };

let server;
let browser;
before(async () => {
  // Enough room quota for the pagination test to create its rooms over the API.
  server = await new Server(['--max-rooms-per-hour', '1000']).start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Answers the app's confirmation dialog (never the browser's): with a reason to type, or just yes. */
async function answerConfirm(page, reason) {
  const confirm = page.locator('dialog.confirm-dialog[open]');
  await confirm.waitFor();
  if (reason !== undefined) await confirm.locator('input').fill(reason);
  await confirm.locator('[data-answer="confirm"]').click();
  await confirm.waitFor({ state: 'detached' });
}

async function setLook(page, { language, style }) {
  await api(page, 'PATCH', '/user/me/profile/', { language, theme: style });
}

async function openRoom(page, room) {
  await page.goto(`${server.url}/tools/chat/enhanced/${room}/`);
  await page.locator('#conn-pill[data-state="connected"]').waitFor();
}

test('an admin bans a member from the room details, sees the ban listed, and lifts it', async () => {
  const a = await newUserContext(browser, server);
  const b = await newUserContext(browser, server);
  const c = await newUserContext(browser, server);
  await register(a.page, server, { displayName: 'Owner' });
  const bob = await register(b.page, server, { displayName: 'Bob' });
  const carol = await register(c.page, server, { displayName: 'Carol' });
  const room = await api(a.page, 'POST', '/chat/rooms/', { name: 'Club', room_type: 'group', members: [bob.id, carol.id] });
  await openRoom(a.page, room.room_id);
  await b.page.locator('.room-item', { hasText: 'Club' }).waitFor();

  await a.page.click('#room-info');
  let info = a.page.locator('dialog[open]');
  await info.locator('.member-row', { hasText: 'Bob' }).locator('button[data-action="ban"]').click();
  await answerConfirm(a.page, 'spam links');
  info = a.page.locator('dialog[open]');
  const listed = info.locator('li[data-banned]', { hasText: 'Bob' });
  await listed.waitFor();
  assert.match(await listed.textContent(), /spam links/);
  assert.match(await listed.textContent(), new RegExp(`由 @\\S+ 封禁`));
  // Bob is out: the room left his list at once, and he cannot come back.
  await b.page.locator('.room-item', { hasText: 'Club' }).waitFor({ state: 'detached' });
  await a.page.locator('.participant', { hasText: 'Bob' }).waitFor({ state: 'detached' });
  await a.page.locator('.system', { hasText: `移出了聊天室` }).filter({ hasText: bob.username }).waitFor();
  await listed.scrollIntoViewIfNeeded();
  await screenshot(a.page, 'desktop-room-bans-zh');

  await info.locator('li[data-banned]', { hasText: 'Bob' }).getByRole('button', { name: '解封' }).click();
  info = a.page.locator('dialog[open]');
  await info.locator('li', { hasText: '没有被封禁的人。' }).waitFor();
  await a.page.keyboard.press('Escape');

  // English, dark, and a ban without a reason.
  await setLook(a.page, { language: 'en', style: 'dark' });
  await openRoom(a.page, room.room_id);
  await a.page.click('#room-info');
  info = a.page.locator('dialog[open]');
  await info.locator('.member-row', { hasText: 'Carol' }).locator('button[data-action="ban"]').click();
  await answerConfirm(a.page, '');
  info = a.page.locator('dialog[open]');
  await info.locator('li[data-banned]', { hasText: 'Carol' }).waitFor();
  assert.match(await info.locator('li[data-banned]', { hasText: 'Carol' }).textContent(), /banned by @/);
  await c.page.locator('.room-item', { hasText: 'Club' }).waitFor({ state: 'detached' });
  await info.locator('li[data-banned]', { hasText: 'Carol' }).scrollIntoViewIfNeeded();
  await screenshot(a.page, 'desktop-room-bans-en-dark');
  await a.page.keyboard.press('Escape');

  // On a phone: the same list.
  const phoneOwner = await newUserContext(browser, server, phone);
  await phoneOwner.page.goto(`${server.url}/login`);
  await phoneOwner.page.fill('#username', (await api(a.page, 'GET', '/auth/me/')).username);
  await phoneOwner.page.fill('#password', 'correct-horse-1');
  await phoneOwner.page.click('form button[type=submit]');
  await phoneOwner.page.waitForURL(`${server.url}/`); // a phone starts at the room list
  await openRoom(phoneOwner.page, room.room_id);
  await phoneOwner.page.click('#room-info');
  await phoneOwner.page.locator('dialog[open] li[data-banned]', { hasText: 'Carol' }).waitFor();
  await phoneOwner.page.locator('dialog[open] li[data-banned]', { hasText: 'Carol' }).scrollIntoViewIfNeeded();
  await screenshot(phoneOwner.page, 'phone-room-bans-en-dark');
  await setLook(a.page, { language: 'zh-CN', style: 'light' });
  for (const page of [a.page, b.page, c.page, phoneOwner.page]) assert.deepEqual(page.errors, []);
  assert.equal(carol.username.length > 0, true);
});

test('a user blocks another from a profile card, sees the block in settings, and lifts it', async () => {
  const a = await newUserContext(browser, server);
  const e = await newUserContext(browser, server);
  await register(a.page, server, { displayName: 'Alice' });
  const eve = await register(e.page, server, { displayName: 'Eve' });
  // A direct room they both use.
  const dm = await api(e.page, 'POST', `/chat/direct/${(await api(a.page, 'GET', '/auth/me/')).id}/`);
  await api(e.page, 'POST', `/chat/${dm.room_id}/send/`, { content: 'hi alice' });
  await openRoom(a.page, 'general');

  await a.page.locator('.participant', { hasText: 'Eve' }).click();
  let card = a.page.locator('dialog[open]');
  await card.locator('button[data-action="block"]').click();
  await answerConfirm(a.page);
  await a.page.locator('.toast', { hasText: '已屏蔽 Eve' }).waitFor();
  // Eve can no longer post in their direct room.
  await openRoom(e.page, dm.room_id);
  await e.page.fill('#composer-input', 'are you there?');
  await e.page.press('#composer-input', 'Enter');
  await e.page.locator('.toast, .failed, .form-status', { hasText: /屏蔽/ }).first().waitFor();

  await a.page.locator('.participant', { hasText: 'Eve' }).click();
  card = a.page.locator('dialog[open]');
  await card.locator('.blocked-note').waitFor();
  await card.locator('button[data-action="unblock"]').waitFor();
  await screenshot(a.page, 'desktop-profile-blocked-zh');
  await a.page.keyboard.press('Escape');

  await a.page.goto(`${server.url}/settings#blocks`);
  const entry = a.page.locator('#block-list li[data-blocked]', { hasText: 'Eve' });
  await entry.waitFor();
  assert.match(await entry.textContent(), new RegExp(`@${eve.username}`));
  await a.page.locator('#blocks').scrollIntoViewIfNeeded();
  await screenshot(a.page, 'desktop-settings-blocks-zh');
  await setLook(a.page, { language: 'en', style: 'dark' });
  await a.page.reload();
  await a.page.locator('h1', { hasText: 'Settings' }).waitFor();
  await a.page.locator('#block-list li[data-blocked]', { hasText: 'Eve' }).waitFor();
  await a.page.locator('#blocks').scrollIntoViewIfNeeded();
  await screenshot(a.page, 'desktop-settings-blocks-en-dark');
  await a.page.locator('#block-list li[data-blocked]', { hasText: 'Eve' }).getByRole('button', { name: 'Unblock' }).click();
  await a.page.locator('#block-list li', { hasText: 'You block nobody.' }).waitFor();
  await a.page.locator('#block-status', { hasText: 'You unblocked Eve.' }).waitFor();

  const phoneUser = await newUserContext(browser, server, { ...phone, locale: 'en' });
  await phoneUser.context.addCookies(await a.context.cookies());
  await api(a.page, 'POST', `/user/${eve.id}/block/`);
  await phoneUser.page.goto(`${server.url}/settings#blocks`);
  await phoneUser.page.locator('#block-list li[data-blocked]', { hasText: 'Eve' }).waitFor();
  await phoneUser.page.locator('#blocks').scrollIntoViewIfNeeded();
  await screenshot(phoneUser.page, 'phone-settings-blocks-en-dark');
  await api(a.page, 'DELETE', `/user/${eve.id}/block/`);

  // Unblocked: Eve posts again.
  await api(e.page, 'POST', `/chat/${dm.room_id}/send/`, { content: 'back again' });
  await setLook(a.page, { language: 'zh-CN', style: 'light' });
  for (const page of [a.page, phoneUser.page]) assert.deepEqual(page.errors, []);
});

test('a user in more rooms than a page holds sees every one of them', async () => {
  const ROOMS = 230; // more than the 200 of one page the web app asks for
  const a = await newUserContext(browser, server);
  await register(a.page, server, { displayName: 'Busy' });
  await a.page.evaluate(async (n) => {
    const csrf = decodeURIComponent(document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/)?.[1] ?? '');
    for (let i = 0; i < n; i += 10) {
      await Promise.all(
        Array.from({ length: Math.min(10, n - i) }, (_, k) =>
          fetch('/tools/api/chat/rooms/', {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf },
            body: JSON.stringify({ name: `busy room ${i + k}`, room_type: 'group' }),
          }).then((r) => {
            if (r.status !== 201) throw new Error(`create: ${r.status}`);
          }),
        ),
      );
    }
  }, ROOMS);
  await a.page.goto('about:blank');
  const pages = [];
  a.page.on('request', (request) => {
    if (request.url().includes('/tools/api/chat/rooms/?')) pages.push(request.url());
  });
  await a.page.goto(`${server.url}/`);
  await a.page.locator('#conn-pill[data-state="connected"]').waitFor();
  await a.page.waitForFunction((n) => document.querySelectorAll('#room-list .room-item').length === n, ROOMS + 1);
  assert.equal(pages.length, 2, `two pages fetched: ${pages.join(', ')}`);
  assert.match(pages[1], /cursor=/);
  // The oldest room, on the second page, is there.
  await a.page.locator('.room-item', { hasText: 'busy room 0' }).first().waitFor({ state: 'attached' });
  await screenshot(a.page, 'desktop-many-rooms');
  assert.deepEqual(a.page.errors, []);
});
