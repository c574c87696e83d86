// Issue 16, points 7–9: the keyboard (quick switcher, moving between rooms,
// the room list and the messages, Escape, the shortcuts list), the app's own
// confirmation dialogs instead of the browser's, the avatar crop and removal,
// archived public rooms for non-members, "mark all as read" and "jump to
// first unread".
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, newUserContext, register, apiToken, apiCall, screenshot, seriousViolations, pageApi as api } from '../lib/harness.mjs';
import { png } from '../lib/png.mjs';

let server;
let browser;
const phone = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

before(async () => {
  server = await new Server(['--message-rate', '1000', '--message-burst', '1000']).start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

async function setLook(page, { language, style }) {
  await api(page, 'PATCH', '/user/me/profile/', { language, theme: style });
}

async function openRoom(page, roomId) {
  await page.goto(`${server.url}/tools/chat/enhanced/${roomId}/`);
  await page.locator('#conn-pill[data-state="connected"]').waitFor();
  await page.locator('#message-rows .row').first().waitFor();
}

async function sendMany(token, roomId, count, prefix) {
  for (let i = 0; i < count; i += 20) {
    await Promise.all(
      Array.from({ length: Math.min(20, count - i) }, (_, k) =>
        apiCall(server, token, 'POST', `/chat/${roomId}/send/`, { content: `${prefix} ${String(i + k).padStart(3, '0')}`, client_id: `${prefix}-${i + k}` }),
      ),
    );
  }
}

const activeText = (page) => page.evaluate(() => document.activeElement?.textContent ?? '');
const title = (page) => page.locator('#room-title').textContent();

test('Ctrl+K: the quick switcher finds rooms fuzzily and by Chinese name, and people; axe finds nothing', async () => {
  const a = await newUserContext(browser, server);
  const b = await newUserContext(browser, server);
  await register(a.page, server, { displayName: 'Alice' });
  const zhang = await register(b.page, server, { displayName: '张伟明' });
  await api(a.page, 'POST', '/chat/rooms/', { name: 'Design Review', room_type: 'group' });
  await api(a.page, 'POST', '/chat/rooms/', { name: '产品讨论组', room_type: 'group' });
  await openRoom(a.page, 'general');
  const page = a.page;

  // From inside the composer.
  await page.focus('#composer-input');
  await page.keyboard.press('Control+k');
  const switcher = page.locator('dialog.switcher[open]');
  await switcher.waitFor();
  const input = switcher.getByRole('combobox');
  assert.ok(await input.evaluate((el) => el === document.activeElement), 'the search field has focus');
  // Empty query: the rooms, recent first.
  await switcher.locator('[role="option"]').first().waitFor();
  assert.deepEqual(await seriousViolations(page, 'dialog.switcher'), [], 'switcher');
  await input.fill('dsrv');
  const first = switcher.locator('[role="option"]').first();
  await page.waitForFunction(() => document.querySelector('dialog.switcher [role="option"]')?.textContent.includes('Design Review'));
  assert.equal(await first.getAttribute('aria-selected'), 'true');
  assert.equal(await input.getAttribute('aria-activedescendant'), await first.getAttribute('id'));
  await screenshot(page, 'keys-switcher-zh');
  await page.keyboard.press('Enter');
  await switcher.waitFor({ state: 'detached' });
  await page.waitForFunction(() => document.querySelector('#room-title').textContent === 'Design Review');

  // A Chinese name, by characters that are not side by side.
  await page.keyboard.press('Control+k');
  await input.fill('产讨');
  await page.waitForFunction(() => document.querySelector('dialog.switcher [role="option"][aria-selected="true"]')?.textContent.includes('产品讨论组'));
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('#room-title').textContent === '产品讨论组');

  // A person, by a fuzzy Chinese query: opens (creates) the direct room.
  await page.keyboard.press('Control+k');
  await input.fill('张明');
  const person = switcher.locator(`[role="option"][data-user="${zhang.username}"]`);
  await person.waitFor();
  // ↓ until the person is the active option, then Enter.
  for (let i = 0; i < 10 && (await person.getAttribute('aria-selected')) !== 'true'; i += 1) await page.keyboard.press('ArrowDown');
  assert.equal(await person.getAttribute('aria-selected'), 'true');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('#room-title').textContent === '张伟明');
  await page.locator('.room-item', { hasText: '张伟明' }).waitFor();

  // Escape closes it; Ctrl+K again toggles it.
  await page.keyboard.press('Control+k');
  await switcher.waitFor();
  await page.keyboard.press('Escape');
  await switcher.waitFor({ state: 'detached' });

  // English, dark; and on a phone.
  await setLook(page, { language: 'en', style: 'dark' });
  await openRoom(page, 'general');
  await page.keyboard.press('Control+k');
  await switcher.waitFor();
  await input.fill('rev');
  await page.waitForFunction(() => document.querySelector('dialog.switcher [role="option"]')?.textContent.includes('Design Review'));
  await screenshot(page, 'keys-switcher-en-dark');
  await page.keyboard.press('Escape');
  const mobile = await newUserContext(browser, server, phone);
  await mobile.context.addCookies(await a.context.cookies());
  await openRoom(mobile.page, 'general');
  await mobile.page.keyboard.press('Control+k');
  await mobile.page.locator('dialog.switcher[open]').waitFor();
  await mobile.page.locator('dialog.switcher [role="option"]').first().waitFor();
  await screenshot(mobile.page, 'keys-switcher-phone-en-dark');
  await setLook(page, { language: 'zh-CN', style: 'light' });
  for (const p of [a.page, b.page, mobile.page]) assert.deepEqual(p.errors, []);
});

test('Alt+↑/↓ and Alt+Shift+↑/↓ move between rooms; the room list is one Tab stop with arrow keys', async () => {
  const a = await newUserContext(browser, server);
  const me = await register(a.page, server, { displayName: 'Mover' });
  const b = await newUserContext(browser, server);
  const bob = await register(b.page, server, { displayName: 'Bob' });
  const bobToken = await apiToken(server, bob.username, bob.password);
  const page = a.page;
  // Oldest first, so the list (most recent first) reads: Room 4, Room 3, Room 2, Room 1, …
  const rooms = [];
  for (const n of [1, 2, 3, 4]) {
    rooms.push(await apiCall(server, bobToken, 'POST', '/chat/rooms/', { name: `Room ${n}`, room_type: 'group', members: [me.id] }));
    await apiCall(server, bobToken, 'POST', `/chat/${rooms.at(-1).room_id}/send/`, { content: `hello ${n}` });
  }
  await openRoom(page, rooms[3].room_id);
  const order = await page.locator('#room-list .room-item .room-name').allTextContents();
  assert.deepEqual(order.slice(0, 4), ['Room 4', 'Room 3', 'Room 2', 'Room 1']);
  // Room 3 read, Room 2 and Room 1 unread.
  await api(page, 'POST', `/chat/${rooms[2].room_id}/read/`, { up_to_seq: 100 });
  await page.reload();
  await page.locator('#conn-pill[data-state="connected"]').waitFor();
  await page.locator('#message-rows .row').first().waitFor();
  await page.focus('#composer-input');

  await page.keyboard.press('Alt+ArrowDown');
  await page.waitForFunction(() => document.querySelector('#room-title').textContent === 'Room 3');
  await page.keyboard.press('Alt+ArrowUp');
  await page.waitForFunction(() => document.querySelector('#room-title').textContent === 'Room 4');
  // The next unread one skips Room 3.
  await page.keyboard.press('Alt+Shift+ArrowDown');
  await page.waitForFunction(() => document.querySelector('#room-title').textContent === 'Room 2');
  await page.locator('.room-item[aria-current="page"]:not(.unread)', { hasText: 'Room 2' }).waitFor();
  await page.keyboard.press('Alt+Shift+ArrowDown');
  await page.waitForFunction(() => document.querySelector('#room-title').textContent === 'Room 1');
  assert.equal(await title(page), 'Room 1');

  // The list is one Tab stop: only one room has tabindex 0, the open one.
  await page.locator('#room-list .room-item[tabindex="0"][aria-current="page"]', { hasText: 'Room 1' }).waitFor();
  const stops = await page.locator('#room-list .room-item[tabindex="0"]').allTextContents();
  assert.equal(stops.length, 1);
  assert.match(stops[0], /Room 1/);
  await page.locator('#room-list .room-item[aria-current="page"]').focus();
  await page.keyboard.press('ArrowUp');
  assert.match(await activeText(page), /Room 2/);
  await page.keyboard.press('Home');
  assert.match(await activeText(page), /Room 1|Room 2|Room 3|Room 4|general|大厅/);
  const firstName = await page.locator('#room-list .room-item').first().locator('.room-name').textContent();
  assert.ok((await activeText(page)).includes(firstName), 'Home: the first room');
  await page.keyboard.press('End');
  const lastName = await page.locator('#room-list .room-item').last().locator('.room-name').textContent();
  assert.ok((await activeText(page)).includes(lastName), 'End: the last room');
  await page.keyboard.press('Home');
  await page.keyboard.press('ArrowDown');
  const second = await page.locator('#room-list .room-item').nth(1).locator('.room-name').textContent();
  assert.ok((await activeText(page)).includes(second));
  assert.equal(await page.locator('#room-list .room-item[tabindex="0"]').count(), 1, 'still one Tab stop');
  // Tab leaves the list at once (it is one stop).
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => Boolean(document.activeElement.closest('#room-list'))), false);
  await page.keyboard.press('Shift+Tab');
  assert.ok((await activeText(page)).includes(second), 'Shift+Tab comes back to the same room');
  await page.keyboard.press('Enter');
  await page.waitForFunction((name) => document.querySelector('#room-title').textContent === name, second);
  assert.deepEqual(page.errors, []);
});

test('Tab moves message by message; the jump pill has a visible ring and covers no message', async () => {
  const a = await newUserContext(browser, server);
  const me = await register(a.page, server, { displayName: 'Reader' });
  const b = await newUserContext(browser, server);
  const bob = await register(b.page, server, { displayName: 'Bob' });
  const bobToken = await apiToken(server, bob.username, bob.password);
  const room = await apiCall(server, bobToken, 'POST', '/chat/rooms/', { name: 'Tabs', room_type: 'group', members: [me.id] });
  await sendMany(bobToken, room.room_id, 60, 'line');
  const page = a.page;
  await openRoom(page, room.room_id);
  await page.locator('.bubble', { hasText: 'line 059' }).waitFor();
  await api(page, 'POST', `/chat/${room.room_id}/read/`, { up_to_seq: 1000 });

  // Each message row is one stop: the name and avatar buttons are not.
  const rows = page.locator('#message-rows > .row');
  await rows.nth(5).focus();
  const seqOf = () => page.evaluate(() => Number(document.activeElement.dataset.seq));
  const start = await seqOf();
  await page.keyboard.press('Tab');
  assert.equal(await seqOf(), start + 1, 'Tab: the next message');
  await page.keyboard.press('Tab');
  assert.equal(await seqOf(), start + 2);
  await page.keyboard.press('Shift+Tab');
  assert.equal(await seqOf(), start + 1, 'Shift+Tab: the previous one');
  await page.keyboard.press('ArrowDown');
  assert.equal(await seqOf(), start + 2, '↓ too');
  const ring = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(ring, 'none', 'a focused message shows it');
  // Enter on someone else's message: their profile.
  await page.keyboard.press('Enter');
  await page.locator('dialog[open].profile-dialog').waitFor();
  await page.keyboard.press('Escape');

  // Away from the bottom, with new messages: the pill.
  await page.locator('#messages').evaluate((el) => {
    el.scrollTop = 0;
  });
  await apiCall(server, bobToken, 'POST', `/chat/${room.room_id}/send/`, { content: 'newest of all' });
  const pill = page.locator('#jump-latest');
  await pill.waitFor();
  await pill.focus();
  const look = await pill.evaluate((el) => ({ shadow: getComputedStyle(el).boxShadow, outline: getComputedStyle(el).outlineStyle }));
  assert.match(look.shadow, /0px 0px 0px 3px.*0px 0px 0px 6px/, `a double ring: ${look.shadow}`);
  // Scrolled to just above the bottom (the pill still shows): it covers no message.
  await page.locator('#messages').evaluate((el) => {
    el.scrollTop = el.scrollHeight - el.clientHeight - 60;
  });
  await page.waitForTimeout(0);
  assert.equal(await pill.isVisible(), true);
  const overlap = await page.evaluate(() => {
    const pillBox = document.querySelector('#jump-latest').getBoundingClientRect();
    const scroller = document.querySelector('#messages').getBoundingClientRect();
    const hits = [];
    for (const bubble of document.querySelectorAll('#message-rows .bubble')) {
      const r = bubble.getBoundingClientRect();
      const visible = r.bottom > scroller.top && r.top < scroller.bottom;
      if (visible && r.left < pillBox.right && r.right > pillBox.left && r.top < pillBox.bottom && r.bottom > pillBox.top) hits.push(bubble.textContent);
    }
    return hits;
  });
  assert.deepEqual(overlap, [], 'the pill covers no visible message');
  await screenshot(page, 'keys-jump-pill-focus');
  assert.deepEqual(page.errors, []);
});

test('Escape closes the topmost layer only; "?" and the keyboard button open the shortcuts list', async () => {
  const { page } = await newUserContext(browser, server);
  await register(page, server, { displayName: 'Esc' });
  await page.locator('#message-rows .row').first().waitFor();
  // Emoji picker over nothing: Escape closes it and focus returns to its button.
  await page.click('#emoji-button');
  await page.locator('#emoji-picker:not([hidden])').waitFor();
  await page.focus('#composer-input');
  await page.keyboard.press('Escape');
  await page.locator('#emoji-picker').waitFor({ state: 'hidden' });
  // A dialog opened from a drawer (phone): Escape closes the dialog, then the drawer.
  const mobile = await newUserContext(browser, server, phone);
  await mobile.context.addCookies(await page.context().cookies());
  const m = mobile.page;
  await openRoom(m, 'general');
  await m.locator('#toggle-participants').tap();
  await m.locator('.app.participants-open').waitFor();
  await m.locator('#participants .participant').first().tap();
  await m.locator('dialog[open]').waitFor();
  await m.keyboard.press('Escape');
  await m.locator('dialog[open]').waitFor({ state: 'detached' });
  assert.equal(await m.locator('.app.participants-open').count(), 1, 'the drawer under the dialog stays open');
  await m.keyboard.press('Escape');
  await m.locator('.app.participants-open').waitFor({ state: 'detached' });
  // The phone's room list has the shortcuts button too.
  await m.locator('#back-to-rooms, #open-rooms').first().tap();
  await m.locator('#show-shortcuts').tap();
  await m.locator('dialog.shortcuts-dialog[open]').waitFor();
  await screenshot(m, 'keys-shortcuts-phone-zh');
  await m.keyboard.press('Escape');
  await m.locator('dialog.shortcuts-dialog').waitFor({ state: 'detached' });

  // "?" when not typing opens the list; in the composer it is just a character.
  await page.focus('#composer-input');
  await page.keyboard.type('?');
  assert.equal(await page.locator('dialog[open]').count(), 0);
  assert.equal(await page.inputValue('#composer-input'), '?');
  await page.fill('#composer-input', '');
  await page.locator('#messages').focus();
  await page.keyboard.press('Shift+Slash');
  const help = page.locator('dialog.shortcuts-dialog[open]');
  await help.waitFor();
  const text = await help.textContent();
  for (const part of ['Ctrl', 'K', 'Alt', 'Shift', 'Esc', '快速切换', '上一个 / 下一个有未读的聊天室']) assert.ok(text.includes(part), `lists ${part}`);
  assert.deepEqual(await seriousViolations(page, 'dialog.shortcuts-dialog'), [], 'shortcuts dialog');
  await screenshot(page, 'keys-shortcuts-zh');
  await page.keyboard.press('Escape');
  await help.waitFor({ state: 'detached' });
  await setLook(page, { language: 'en', style: 'dark' });
  await page.reload();
  await page.locator('#show-shortcuts').click();
  await help.waitFor();
  assert.ok((await help.textContent()).includes('Previous / next unread room'));
  await screenshot(page, 'keys-shortcuts-en-dark');
  await page.keyboard.press('Escape');
  // Escape with the switcher open closes the switcher only (and not a drawer behind).
  await page.keyboard.press('Control+k');
  await page.locator('dialog.switcher[open]').waitFor();
  await page.keyboard.press('Escape');
  await page.locator('dialog.switcher').waitFor({ state: 'detached' });
  await setLook(page, { language: 'zh-CN', style: 'light' });
  for (const p of [page, m]) assert.deepEqual(p.errors, []);
});

test('leaving, removing, transferring, banning and logging out ask in the app’s own dialog', async () => {
  const a = await newUserContext(browser, server);
  const b = await newUserContext(browser, server);
  await register(a.page, server, { displayName: 'Owner' });
  const bob = await register(b.page, server, { displayName: 'Bob' });
  const page = a.page;
  // The harness records any native dialog as a page error: none may appear.
  const room = await api(page, 'POST', '/chat/rooms/', { name: 'Leavable', room_type: 'group', members: [bob.id] });
  await openRoom(page, room.room_id);

  // Remove: Escape cancels, nothing happens.
  await page.click('#room-info');
  let info = page.locator('dialog[open]').first();
  await info.locator('.member-row', { hasText: 'Bob' }).locator('button[data-action="remove"]').click();
  const confirm = page.locator('dialog.confirm-dialog[open]');
  await confirm.waitFor();
  assert.equal(await confirm.getAttribute('role'), 'alertdialog');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.answer), 'cancel', 'focus starts on Cancel');
  const danger = confirm.locator('[data-answer="confirm"]');
  assert.match(await danger.getAttribute('class'), /danger-solid/);
  const look = await danger.evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.equal(look, 'rgb(185, 28, 28)', 'the dangerous button is red');
  // Focus is trapped: Tab cycles inside the confirmation.
  for (let i = 0; i < 4; i += 1) {
    await page.keyboard.press('Tab');
    assert.ok(await confirm.evaluate((d) => d.contains(document.activeElement)), 'focus stays in the dialog');
  }
  assert.deepEqual(await seriousViolations(page, 'dialog.confirm-dialog'), [], 'confirm dialog');
  await screenshot(page, 'keys-confirm-remove-zh');
  await page.keyboard.press('Escape');
  await confirm.waitFor({ state: 'detached' });
  assert.ok(await info.isVisible(), 'the room details stay open under it');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.action), 'remove', 'focus returns to the opener');
  assert.equal(await info.locator('.member-row', { hasText: 'Bob' }).count(), 1, 'Bob is still a member');

  // Transfer: confirmed.
  await info.locator('.member-row', { hasText: 'Bob' }).locator('button[data-action="transfer"]').click();
  await confirm.waitFor();
  await confirm.locator('[data-answer="confirm"]').click();
  info = page.locator('dialog[open]').first();
  await info.locator('.member-row', { hasText: 'Bob' }).locator('small', { hasText: '· 群主' }).waitFor();
  await page.keyboard.press('Escape');

  // Leave: Cancel keeps the room, confirm leaves it.
  await page.click('#room-info');
  info = page.locator('dialog[open]').first();
  await info.locator('button[data-action="leave"]').click();
  await confirm.waitFor();
  assert.match(await confirm.textContent(), /Leavable/);
  await confirm.locator('[data-answer="cancel"]').click();
  await confirm.waitFor({ state: 'detached' });
  assert.equal(await page.locator('.room-item', { hasText: 'Leavable' }).count(), 1);
  await info.locator('button[data-action="leave"]').click();
  await confirm.waitFor();
  await confirm.locator('[data-answer="confirm"]').click();
  await page.locator('.room-item', { hasText: 'Leavable' }).waitFor({ state: 'detached' });

  // English, dark: the same dialog, for a ban with a reason.
  await setLook(page, { language: 'en', style: 'dark' });
  const club = await api(page, 'POST', '/chat/rooms/', { name: 'Club', room_type: 'group', members: [bob.id] });
  await openRoom(page, club.room_id);
  await page.click('#room-info');
  info = page.locator('dialog[open]').first();
  await info.locator('.member-row', { hasText: 'Bob' }).locator('button[data-action="ban"]').click();
  await confirm.waitFor();
  await confirm.locator('input').fill('spam links');
  await screenshot(page, 'keys-confirm-ban-en-dark');
  await confirm.locator('[data-answer="confirm"]').click();
  await page.locator('dialog[open] li[data-banned]', { hasText: 'Bob' }).filter({ hasText: 'spam links' }).waitFor();
  await page.keyboard.press('Escape');

  // Logging out asks; Cancel stays, confirm logs out.
  const mobile = await newUserContext(browser, server, { ...phone, locale: 'en' });
  await mobile.context.addCookies(await a.context.cookies());
  await openRoom(mobile.page, 'general');
  await mobile.page.locator('#open-rooms').tap();
  await mobile.page.locator('form[action="/logout"] button').tap();
  await mobile.page.locator('dialog.confirm-dialog[open]').waitFor();
  await screenshot(mobile.page, 'keys-confirm-logout-phone-en-dark');
  // An unsent message in the stored outbox: a cancelled logout keeps it.
  const outboxKey = await page.evaluate(async () => `parley.outbox.${(await (await fetch('/tools/api/auth/me/')).json()).data.id}`);
  await page.evaluate((key) => localStorage.setItem(key, '{}'), outboxKey);
  await page.locator('form[action="/logout"] button').click();
  await confirm.waitFor();
  assert.match(await confirm.textContent(), /Log out\?/);
  await page.keyboard.press('Escape');
  await confirm.waitFor({ state: 'detached' });
  assert.match(page.url(), /\/tools\/chat\/enhanced\//, 'still in the app');
  assert.equal(await page.evaluate((key) => localStorage.getItem(key), outboxKey), '{}', 'a cancelled logout keeps the outbox');
  await page.locator('form[action="/logout"] button').click();
  await confirm.locator('[data-answer="confirm"]').click();
  // The form's navigation may be overtaken by the app's own move to the login
  // page once the session ends (its socket is closed): either lands there.
  await page.waitForURL((url) => !url.pathname.startsWith('/tools/chat/')).catch(() => {});
  await page.waitForURL('**/login**');
  const me = await page.evaluate(async () => (await fetch('/tools/api/auth/me/')).status);
  assert.equal(me, 401, 'logged out');
  assert.equal(await page.evaluate((key) => localStorage.getItem(key), outboxKey), null, 'logging out forgets the outbox');
  for (const p of [a.page, b.page, mobile.page]) assert.deepEqual(p.errors, []);
});

/** A PNG of `width`×`height`: the left half red, the right half blue. */
const halves = (width, height) => png(width, height, (x) => (x < width / 2 ? [220, 40, 40] : [30, 60, 220]));

/** Records what the page uploads as an avatar, read back as an image. */
async function watchUploads(page) {
  await page.evaluate(() => {
    window.avatarUploads = [];
    const send = window.fetch;
    window.fetch = async (url, init) => {
      if (String(url).includes('/user/me/avatar/') && init?.body instanceof FormData) {
        const blob = init.body.get('avatar');
        const image = await createImageBitmap(blob);
        const canvas = new OffscreenCanvas(image.width, image.height);
        const context = canvas.getContext('2d');
        context.drawImage(image, 0, 0);
        const [lr, lg, lb] = context.getImageData(4, image.height / 2, 1, 1).data;
        const [rr, rg, rb] = context.getImageData(image.width - 4, image.height / 2, 1, 1).data;
        window.avatarUploads.push({ type: blob.type, width: image.width, height: image.height, left: [lr, lg, lb], right: [rr, rg, rb] });
      }
      return send(url, init);
    };
  });
}

test('the avatar picker crops to a square (drag, zoom) and uploads it; "remove avatar" goes back to the initials', async () => {
  const { page, context } = await newUserContext(browser, server);
  await register(page, server, { displayName: 'Cropper' });
  await page.goto(`${server.url}/settings`);
  assert.equal(await page.locator('#avatar-remove').isHidden(), true, 'nothing to remove yet');
  // The file input is real and labelled, but hidden behind the styled button.
  const label = await page.locator('#avatar-input').evaluate((el) => el.labels.length + (el.getAttribute('aria-labelledby') ? 1 : 0));
  assert.ok(label > 0);
  await watchUploads(page);
  await page.setInputFiles('#avatar-input', { name: 'wide.png', mimeType: 'image/png', buffer: halves(600, 300) });
  const crop = page.locator('dialog.crop-dialog[open]');
  await crop.waitFor();
  const stage = crop.locator('.crop-stage');
  await screenshot(page, 'keys-crop-zh');
  // Zoom in with the slider, then drag the picture.
  await crop.locator('input[type="range"]').fill('2');
  const before = await crop.locator('.crop-image').evaluate((el) => el.style.transform);
  const box = await stage.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + 60, box.y + box.height / 2 + 10, { steps: 4 });
  await page.mouse.up();
  const after = await crop.locator('.crop-image').evaluate((el) => el.style.transform);
  assert.notEqual(after, before, 'dragging moves the picture');
  await crop.locator('#avatar-save').click();
  await page.locator('#avatar-status', { hasText: '头像已更新' }).waitFor();
  // What went up is a square PNG of the part shown: zoomed in on the middle
  // of a red|blue picture and dragged a little right, red on the left and
  // blue on the right.
  const uploads = await page.evaluate(() => window.avatarUploads);
  assert.equal(uploads.length, 1);
  const [upload] = uploads;
  assert.equal(upload.type, 'image/png');
  assert.equal(upload.width, upload.height, `square: ${upload.width}×${upload.height}`);
  assert.equal(upload.width, 256);
  assert.ok(upload.left[0] > 180 && upload.left[2] < 80, `red on the left: ${upload.left}`);
  assert.ok(upload.right[2] > 180 && upload.right[0] < 80, `blue on the right: ${upload.right}`);
  const url = await page.getAttribute('#avatar-preview', 'src');
  assert.match(url, /\?v=1$/);
  await page.locator('#avatar-remove').waitFor();
  await screenshot(page, 'keys-avatar-settings-zh');

  // Remove: asks, then the initials come back.
  await page.click('#avatar-remove');
  const confirm = page.locator('dialog.confirm-dialog[open]');
  await confirm.waitFor();
  await confirm.locator('[data-answer="confirm"]').click();
  await page.locator('#avatar-status', { hasText: '头像已移除' }).waitFor();
  assert.match(await page.getAttribute('#avatar-preview', 'src'), /\?v=g/);
  assert.equal(await page.locator('#avatar-remove').isHidden(), true);
  const profile = await api(page, 'GET', '/user/me/profile/');
  assert.match(profile.avatar_url, /\?v=g/);

  // Not an image: said at once, no dialog.
  await page.setInputFiles('#avatar-input', { name: 'evil.png', mimeType: 'image/png', buffer: Buffer.from('<svg onload=alert(1)>') });
  await page.locator('#avatar-status.error', { hasText: '请使用 PNG、JPEG、GIF 或 WebP 图片' }).waitFor();
  assert.equal(await page.locator('dialog[open]').count(), 0);

  // English, dark, and a phone.
  await setLook(page, { language: 'en', style: 'dark' });
  await page.reload();
  await watchUploads(page);
  await page.setInputFiles('#avatar-input', { name: 'tall.png', mimeType: 'image/png', buffer: halves(300, 500) });
  await crop.waitFor();
  await screenshot(page, 'keys-crop-en-dark');
  await page.keyboard.press('Escape');
  await crop.waitFor({ state: 'detached' });
  const mobile = await newUserContext(browser, server, { ...phone, locale: 'en' });
  await mobile.context.addCookies(await context.cookies());
  await mobile.page.goto(`${server.url}/settings`);
  await mobile.page.setInputFiles('#avatar-input', { name: 'wide.png', mimeType: 'image/png', buffer: halves(600, 300) });
  await mobile.page.locator('dialog.crop-dialog[open]').waitFor();
  await screenshot(mobile.page, 'keys-crop-phone-en-dark');
  assert.equal((await page.evaluate(() => window.avatarUploads?.length ?? 0)), 0, 'a cancelled crop uploads nothing');
  await setLook(page, { language: 'zh-CN', style: 'light' });
  for (const p of [page, mobile.page]) assert.deepEqual(p.errors, []);
});

test('an archived public room tells a non-member so instead of offering Join', async () => {
  const a = await newUserContext(browser, server);
  const b = await newUserContext(browser, server);
  await register(a.page, server, { displayName: 'Archivist' });
  await register(b.page, server, { displayName: 'Visitor' });
  const room = await api(a.page, 'POST', '/chat/rooms/', { name: 'Old news', room_type: 'public' });
  await api(a.page, 'POST', `/chat/${room.room_id}/send/`, { content: 'the last word' });
  await api(a.page, 'POST', `/chat/${room.room_id}/archive/`);
  await openRoom(b.page, room.room_id);
  const bar = b.page.locator('#readonly-bar');
  await bar.waitFor();
  assert.match(await bar.textContent(), /已归档.*不能加入/);
  assert.equal(await b.page.locator('#join-bar').isHidden(), true, 'no Join offered');
  assert.equal(await b.page.locator('#composer').isHidden(), true);
  // An active public room still offers Join.
  const open = await api(a.page, 'POST', '/chat/rooms/', { name: 'Fresh news', room_type: 'public' });
  await openRoom(b.page, open.room_id);
  await b.page.locator('#join-bar').waitFor();
  assert.equal(await bar.isHidden(), true);
  for (const p of [a.page, b.page]) assert.deepEqual(p.errors, []);
});

test('"mark all as read" clears every badge; "jump to first unread" loads back to the divider', async () => {
  const a = await newUserContext(browser, server);
  const me = await register(a.page, server, { displayName: 'Busy reader' });
  const b = await newUserContext(browser, server);
  const bob = await register(b.page, server, { displayName: 'Bob' });
  const bobToken = await apiToken(server, bob.username, bob.password);
  const page = a.page;
  const rooms = [];
  for (const n of [1, 2, 3]) {
    const room = await apiCall(server, bobToken, 'POST', '/chat/rooms/', { name: `Unread ${n}`, room_type: 'group', members: [me.id] });
    rooms.push(room);
    await sendMany(bobToken, room.room_id, n * 2, `u${n}`);
  }
  // A long backlog: more unread than the first page holds.
  const long = await apiCall(server, bobToken, 'POST', '/chat/rooms/', { name: 'Backlog', room_type: 'group', members: [me.id] });
  await sendMany(bobToken, long.room_id, 240, 'backlog');
  await openRoom(page, 'general');
  for (const n of [1, 2, 3]) await page.locator('.room-item', { hasText: `Unread ${n}` }).locator('.unread-badge').waitFor();
  await page.locator('.room-item', { hasText: 'Backlog' }).locator('.unread-badge').waitFor();

  // Jump to the first unread: it is older than what is loaded at first.
  await page.locator('.room-item', { hasText: 'Backlog' }).click();
  await page.locator('.bubble', { hasText: 'backlog 239' }).waitFor();
  assert.equal(await page.locator('.bubble', { hasText: 'backlog 000' }).count(), 0, 'not loaded at first');
  const jump = page.locator('#jump-unread');
  await jump.waitFor();
  assert.match(await jump.textContent(), /240 条新消息/);
  await screenshot(page, 'keys-jump-unread-zh');
  await jump.click();
  const divider = page.locator('#unread-divider');
  await divider.waitFor();
  // The divider sits before the first unread message: nothing unread above it.
  const around = await page.evaluate(() => {
    const row = document.querySelector('#unread-divider').closest('.row');
    const above = [];
    for (let r = row.previousElementSibling; r; r = r.previousElementSibling) above.push(r.querySelector('.bubble')?.textContent ?? '');
    return { first: row.querySelector('.bubble')?.textContent, above };
  });
  assert.match(around.first, /^backlog \d{3}$/);
  assert.deepEqual(around.above.filter((text) => text.startsWith('backlog')), [], 'the divider is before the first unread');
  await page.waitForFunction(() => {
    const d = document.querySelector('#unread-divider').getBoundingClientRect();
    const s = document.querySelector('#messages').getBoundingClientRect();
    return d.top >= s.top - 1 && d.bottom <= s.bottom;
  });
  await jump.waitFor({ state: 'hidden' });

  // Mark all as read: every badge goes, the server agrees.
  await page.locator('#mark-all-read').click();
  await page.locator('.toast', { hasText: '所有聊天室已标为已读' }).waitFor();
  // The list re-renders in the next frame.
  await page.waitForFunction(() => document.querySelectorAll('#room-list .unread-badge').length === 0);
  const listed = await api(page, 'GET', '/chat/rooms/');
  const list = listed.results ?? listed.rooms ?? listed;
  for (const room of list) assert.equal(room.unread ?? 0, 0, `${room.name} is read`);
  await page.reload();
  await page.locator('#conn-pill[data-state="connected"]').waitFor();
  await page.locator('#room-list .room-item').first().waitFor();
  assert.equal(await page.locator('#room-list .unread-badge').count(), 0, 'still read after a reload');
  assert.deepEqual(page.errors, []);
});
