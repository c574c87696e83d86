// Room details: the owner renames the room, adds a member, makes an invite link
// that a third user opens and joins with; everyone sees the changes live.
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

test('rename, add a member, and join through an invite link', async () => {
  const a = await newUserContext(browser, server);
  const b = await newUserContext(browser, server);
  const c = await newUserContext(browser, server);
  await register(a.page, server, { displayName: 'Owner' });
  const bob = await register(b.page, server, { displayName: 'Bob' });
  await register(c.page, server, { displayName: 'Carol' });

  await a.page.click('#new-group');
  const create = a.page.locator('dialog[open]');
  await create.getByLabel('群组名称').fill('Design');
  await create.getByRole('button', { name: '创建群组' }).click();
  await a.page.locator('#room-title', { hasText: 'Design' }).waitFor();

  await a.page.click('#room-info');
  let info = a.page.locator('dialog[open]');
  await info.getByLabel('名称').fill('Design team');
  await info.getByRole('button', { name: '保存' }).first().click();
  await a.page.locator('#room-title', { hasText: 'Design team' }).waitFor();
  await a.page.locator('.system', { hasText: '将聊天室改名为「Design team」' }).waitFor();

  info = a.page.locator('dialog[open]');
  await info.getByPlaceholder('添加成员').fill(bob.username.slice(0, 6));
  await info.locator(`button.result[data-user="${bob.username}"]`).click();
  await a.page.locator('.participant', { hasText: 'Bob' }).waitFor();
  await b.page.locator('.room-item', { hasText: 'Design team' }).waitFor();

  info = a.page.locator('dialog[open]');
  await info.getByRole('button', { name: '创建邀请链接' }).click();
  info = a.page.locator('dialog[open]');
  const url = await info.locator('.invite-url').first().textContent();
  assert.match(url, /\/invite\/[A-Za-z0-9_-]{22}$/);
  await screenshot(a.page, 'desktop-room-details');
  await a.page.keyboard.press('Escape');

  await c.page.goto(new URL(new URL(url).pathname, server.url).href);
  await c.page.locator('h1', { hasText: '你收到了邀请' }).waitFor();
  await c.page.getByRole('button', { name: '加入聊天室' }).click();
  await c.page.locator('#room-title', { hasText: 'Design team' }).waitFor();
  await a.page.locator('.participant', { hasText: 'Carol' }).waitFor();
  await c.page.fill('#composer-input', 'thanks for the invite');
  await c.page.press('#composer-input', 'Enter');
  await a.page.locator('.bubble', { hasText: 'thanks for the invite' }).waitFor();
  for (const page of [a.page, b.page, c.page]) assert.deepEqual(page.errors, []);
});
