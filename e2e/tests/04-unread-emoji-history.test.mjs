// Unread badge and divider, the emoji picker, and older history loading on scroll.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, newUserContext, register, apiToken, apiCall, screenshot } from '../lib/harness.mjs';

let server;
let browser;
let a;
let b;
let alice;
let bob;
let bobToken;
before(async () => {
  server = await new Server(['--message-rate', '1000', '--message-burst', '1000']).start();
  browser = await launchBrowser();
  a = await newUserContext(browser, server);
  b = await newUserContext(browser, server);
  alice = await register(a.page, server, { displayName: 'Alice' });
  bob = await register(b.page, server, { displayName: 'Bob' });
  bobToken = await apiToken(server, bob.username, bob.password);
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('messages in another room raise its unread badge; opening it shows the divider', async () => {
  const room = await apiCall(server, bobToken, 'POST', '/chat/rooms/', { name: 'Unread test', room_type: 'group', members: [alice.id] });
  await a.page.locator('.room-item', { hasText: 'Unread test' }).waitFor();
  await apiCall(server, bobToken, 'POST', `/chat/${room.room_id}/send/`, { content: 'before you looked' });
  // Alice reads the room, then goes back to general.
  await a.page.locator('.room-item', { hasText: 'Unread test' }).click();
  await a.page.locator('.bubble', { hasText: 'before you looked' }).waitFor();
  await a.page.waitForTimeout(600); // the read receipt is debounced
  await a.page.locator('.room-item', { hasText: 'general' }).click();
  await a.page.locator('#room-title', { hasText: 'general' }).waitFor();

  for (const text of ['one', 'two', 'three']) await apiCall(server, bobToken, 'POST', `/chat/${room.room_id}/send/`, { content: `unread ${text}` });
  const badge = a.page.locator('.room-item', { hasText: 'Unread test' }).locator('.unread-badge');
  await badge.filter({ hasText: '3' }).waitFor();
  await screenshot(a.page, 'desktop-unread-badge');

  await a.page.locator('.room-item', { hasText: 'Unread test' }).click();
  const divider = a.page.locator('#unread-divider');
  await divider.waitFor();
  // The divider sits right before the first unread message.
  const nextText = await divider.evaluate((el) => el.parentElement.querySelector('.bubble')?.textContent);
  assert.equal(nextText, 'unread one');
  await badge.waitFor({ state: 'detached' });
  await screenshot(a.page, 'desktop-unread-divider');
});

test('the emoji picker inserts at the cursor, searches and remembers recent ones', async () => {
  const input = a.page.locator('#composer-input');
  await input.fill('ab');
  await input.evaluate((el) => el.setSelectionRange(1, 1));
  await a.page.click('#emoji-button');
  const picker = a.page.locator('#emoji-picker');
  await picker.locator('.emoji-cells button').first().waitFor();
  await picker.getByPlaceholder('搜索表情').fill('rocket');
  await picker.locator('.emoji-cells button').filter({ hasText: /^🚀$/ }).click();
  await picker.waitFor({ state: 'hidden' });
  assert.equal(await input.inputValue(), 'a🚀b');
  // Chinese names are searchable too, and Esc closes the picker.
  await a.page.click('#emoji-button');
  await picker.getByPlaceholder('搜索表情').fill('笑脸');
  await picker.locator('.emoji-cells button').first().waitFor();
  assert.ok((await picker.locator('.emoji-cells button').count()) > 0);
  await a.page.keyboard.press('Escape');
  await picker.waitFor({ state: 'hidden' });
  assert.equal(await a.page.evaluate(() => document.activeElement.id), 'emoji-button');
  // Recently used comes first.
  await a.page.click('#emoji-button');
  await picker.locator('[data-section="recent"] button').filter({ hasText: /^🚀$/ }).waitFor();
  await screenshot(a.page, 'desktop-emoji-picker');
  await a.page.keyboard.press('Escape');
  await input.fill('');
});

test('scrolling up loads older history until the beginning', async () => {
  const room = await apiCall(server, bobToken, 'POST', '/chat/rooms/', { name: 'Long history', room_type: 'group', members: [alice.id] });
  const total = 260;
  for (let i = 0; i < total; i += 1) {
    await apiCall(server, bobToken, 'POST', `/chat/${room.room_id}/send/`, { content: `history ${String(i).padStart(3, '0')}`, client_id: `h-${i}` });
  }
  await a.page.locator('.room-item', { hasText: 'Long history' }).click();
  await a.page.locator('.bubble', { hasText: 'history 259' }).waitFor();
  assert.equal(await a.page.locator('.bubble', { hasText: 'history 000' }).count(), 0, 'the oldest are not loaded at first');
  const scroller = a.page.locator('#messages');
  const beginning = a.page.locator('#history-status', { hasText: '这是对话的开始' });
  for (let i = 0; i < 30 && (await beginning.count()) === 0; i += 1) {
    await scroller.evaluate((el) => {
      el.scrollTop = 0;
    });
    await a.page.waitForTimeout(250);
  }
  await beginning.waitFor();
  await a.page.locator('.bubble', { hasText: 'history 000' }).waitFor();
  await a.page.locator('.system', { hasText: '创建了聊天室' }).waitFor();
  const texts = (await a.page.locator('#message-rows .bubble').allTextContents()).filter((t) => t.startsWith('history'));
  assert.deepEqual(texts, [...texts].sort(), 'in order');
  assert.equal(new Set(texts).size, texts.length, 'no duplicates');
  // Only a window of the history is in the page, however much was loaded.
  assert.ok((await a.page.locator('#message-rows .row').count()) <= 220);
  // Far from the latest: the jump button brings the newest back.
  await a.page.locator('#jump-latest').click();
  await a.page.locator('.bubble', { hasText: 'history 259' }).waitFor();
  assert.deepEqual(a.page.errors, []);
});
