// Two users in two browsers: create a group, add the second, chat both ways.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, newUserContext, register, screenshot } from '../lib/harness.mjs';

let server;
let browser;
before(async () => {
  server = await new Server().start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('two users create a group and chat live in both directions', async () => {
  const a = await newUserContext(browser, server);
  const b = await newUserContext(browser, server);
  const alice = await register(a.page, server, { displayName: '爱丽丝' });
  const bob = await register(b.page, server, { displayName: 'Bob Builder' });

  // Alice creates a private group and adds Bob from the people search.
  await a.page.click('#new-group');
  const dialog = a.page.locator('dialog[open]');
  await dialog.getByLabel('群组名称').fill('火星计划');
  await dialog.getByPlaceholder('搜索要添加的人').fill(bob.username.slice(0, 6));
  await dialog.locator(`button.result[data-user="${bob.username}"]`).click();
  await assert.doesNotReject(dialog.locator('.chip', { hasText: 'Bob Builder' }).waitFor());
  await dialog.getByRole('button', { name: '创建群组' }).click();
  await a.page.locator('#room-title', { hasText: '火星计划' }).waitFor();
  assert.match(a.page.url(), /\/tools\/chat\/enhanced\/[a-z0-9-]+\/$/);

  // The room appears in Bob's list by itself (room_joined over the socket).
  const bobsItem = b.page.locator('.room-item', { hasText: '火星计划' });
  await bobsItem.waitFor();
  await bobsItem.click();
  await b.page.locator('#room-title', { hasText: '火星计划' }).waitFor();
  await b.page.locator('.participant', { hasText: '爱丽丝' }).waitFor();

  await a.page.fill('#composer-input', 'Bob，你好！Ready for launch?');
  await a.page.press('#composer-input', 'Enter');
  await b.page.locator('.msg:not(.own) .bubble', { hasText: 'Bob，你好！Ready for launch?' }).waitFor();
  // Alice's own copy is confirmed (no longer pending) and on the right.
  await a.page.locator('#message-rows .msg.own .bubble', { hasText: 'Ready for launch?' }).waitFor();
  assert.equal(await a.page.locator('#pending-rows .msg').count(), 0);

  await b.page.fill('#composer-input', 'Ready 🚀\nsecond line');
  await b.page.press('#composer-input', 'Enter');
  const received = a.page.locator('.msg:not(.own) .bubble', { hasText: 'Ready 🚀' });
  await received.waitFor();
  assert.equal(await received.innerText(), 'Ready 🚀\nsecond line');
  // Sender name and avatar on the first message of Bob's run.
  await a.page.locator('.msg.first:not(.own) .name', { hasText: 'Bob Builder' }).waitFor();

  // Shift+Enter makes a new line instead of sending.
  await a.page.fill('#composer-input', 'line one');
  await a.page.press('#composer-input', 'Shift+Enter');
  await a.page.keyboard.type('line two');
  assert.equal(await a.page.inputValue('#composer-input'), 'line one\nline two');
  await a.page.press('#composer-input', 'Enter');
  await b.page.locator('.bubble', { hasText: 'line two' }).waitFor();

  assert.equal((await b.page.locator('#message-rows .bubble').allTextContents()).filter((t) => t.includes('Ready for launch')).length, 1);
  await screenshot(a.page, 'desktop-chat-alice');
  await screenshot(b.page, 'desktop-chat-bob');
  assert.deepEqual(a.page.errors, []);
  assert.deepEqual(b.page.errors, []);
  assert.ok(alice.id && bob.id);
});
