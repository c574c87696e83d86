// Direct messages with read receipts, notifications while the tab is hidden,
// a send that fails and is retried, the character counter, and the settings page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, newUserContext, register, screenshot } from '../lib/harness.mjs';
import { png } from '../lib/png.mjs';

let server;
let browser;
let a;
let b;
let alice;
let bob;
before(async () => {
  server = await new Server(['--message-burst', '5', '--message-rate', '1']).start();
  browser = await launchBrowser();
  a = await newUserContext(browser, server);
  b = await newUserContext(browser, server);
  alice = await register(a.page, server, { displayName: 'Alice' });
  bob = await register(b.page, server, { displayName: 'Bob' });
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a direct message from the profile card, with 已读 receipts', async () => {
  await a.page.locator('.participant', { hasText: 'Bob' }).click();
  const card = a.page.locator('dialog[open]');
  await card.getByRole('button', { name: '发消息' }).click();
  await a.page.locator('#room-title', { hasText: 'Bob' }).waitFor();
  await a.page.fill('#composer-input', 'psst, Bob');
  await a.page.press('#composer-input', 'Enter');
  const receipt = a.page.locator('#message-rows .msg.own .receipt.latest');
  await receipt.filter({ hasText: '未读' }).waitFor();
  // Bob opens it from his list; Alice sees it read.
  await b.page.locator('.room-item', { hasText: 'Alice' }).click();
  await b.page.locator('.bubble', { hasText: 'psst, Bob' }).waitFor();
  await receipt.filter({ hasText: '已读' }).waitFor();
  // Only the newest own message carries the receipt.
  await a.page.fill('#composer-input', 'and another');
  await a.page.press('#composer-input', 'Enter');
  await a.page.locator('#message-rows .msg.own .receipt.latest', { hasText: '未读' }).waitFor();
  assert.equal(await a.page.locator('#message-rows .receipt.latest').count(), 1);
  await b.page.locator('.bubble', { hasText: 'and another' }).waitFor();
  await receipt.filter({ hasText: '已读' }).waitFor();
  await screenshot(a.page, 'desktop-direct-read');
});

test('while the tab is hidden: unread count in the title and a desktop notification', async () => {
  await a.context.grantPermissions(['notifications'], { origin: server.url });
  await a.page.evaluate(() => {
    localStorage.setItem('parley.notify', 'on');
    window.__notes = [];
    window.Notification = class extends window.Notification {
      constructor(title, options) {
        super(title, options);
        window.__notes.push({ title, body: options?.body });
      }
    };
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await b.page.fill('#composer-input', 'are you there?');
  await b.page.press('#composer-input', 'Enter');
  await a.page.waitForFunction(() => document.title.startsWith('(1) '));
  const notes = await a.page.evaluate(() => window.__notes);
  assert.deepEqual(notes, [{ title: 'Bob · Bob', body: 'are you there?' }]);
  // Back to the tab: the count goes away once read.
  await a.page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await a.page.waitForFunction(() => !document.title.startsWith('('));
});

test('a refused send shows why and can be retried; the counter warns near the limit', async () => {
  // The server allows a burst of 5: the 7th and 8th are refused.
  for (let i = 1; i <= 8; i += 1) {
    await b.page.fill('#composer-input', `burst ${i}`);
    await b.page.press('#composer-input', 'Enter');
  }
  const failed = b.page.locator('#pending-rows .msg.failed');
  await failed.first().waitFor();
  assert.match(await failed.first().innerText(), /发送失败 · 发送太快了/);
  await screenshot(b.page, 'desktop-send-failed');
  await b.page.waitForTimeout(2500);
  const retry = b.page.locator('#pending-rows .msg.failed button');
  for (let i = 0; i < 10 && (await retry.count()) > 0; i += 1) {
    await retry.first().click();
    await b.page.waitForTimeout(1100);
  }
  await b.page.locator('#pending-rows .msg').first().waitFor({ state: 'detached', timeout: 10000 });
  const shown = (await a.page.locator('#message-rows .bubble').allTextContents()).filter((t) => t.startsWith('burst'));
  assert.deepEqual([...shown].sort(), Array.from({ length: 8 }, (_, i) => `burst ${i + 1}`).sort());

  const input = b.page.locator('#composer-input');
  await input.fill('x'.repeat(4600));
  await b.page.locator('#char-counter', { hasText: '4600/5000' }).waitFor();
  await input.fill('x'.repeat(5001));
  await b.page.locator('#char-counter.over', { hasText: '5001/5000' }).waitFor();
  assert.equal(await b.page.locator('#send-button').isDisabled(), true);
  await input.fill('');
});

/** A tiny valid PNG (solid colour), for the avatar upload. */
const avatarPng = (width, height) => png(width, height, () => [220, 60, 90]);

test('settings: profile, avatar with preview, API token shown once, other sessions logged out', async () => {
  const page = a.page;
  await page.goto(`${server.url}/settings`);
  await page.fill('input[name="display_name"]', 'Alice 李');
  await page.fill('input[name="first_name"]', 'Alice');
  await page.fill('textarea[name="bio"]', 'Down the rabbit hole.');
  await page.click('#profile-form button[type="submit"]');
  await page.locator('#profile-status', { hasText: '已保存' }).waitFor();

  const before = await page.getAttribute('#avatar-preview', 'src');
  await page.setInputFiles('#avatar-input', { name: 'me.png', mimeType: 'image/png', buffer: avatarPng(40, 30) });
  // The crop dialog shows the picture first; its square is uploaded.
  await page.locator('dialog.crop-dialog[open] .crop-image').waitFor();
  await page.click('#avatar-save');
  await page.locator('#avatar-status', { hasText: '头像已更新' }).waitFor();
  const after = await page.getAttribute('#avatar-preview', 'src');
  assert.notEqual(after, before);
  assert.match(after, /^\/avatars\/.+\?v=1$/);
  // Not an image: a clear, translated refusal.
  await page.setInputFiles('#avatar-input', { name: 'evil.png', mimeType: 'image/png', buffer: Buffer.from('<svg onload=alert(1)>') });
  await page.locator('#avatar-status.error', { hasText: '请使用 PNG、JPEG、GIF 或 WebP 图片' }).waitFor();

  await page.fill('#token-form input[name="name"]', 'deploy bot');
  await page.click('#token-form button[type="submit"]');
  await page.locator('#new-token').waitFor();
  const token = await page.locator('#new-token-value').textContent();
  assert.match(token, /^prl_/);
  await page.locator('#token-list li', { hasText: 'deploy bot' }).waitFor();
  const me = await fetch(`${server.url}/tools/api/auth/me/`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal((await me.json()).data.display_name, 'Alice 李');
  await page.locator('#token-list li', { hasText: 'deploy bot' }).getByRole('button').click();
  await page.locator('#token-status', { hasText: '令牌已撤销' }).waitFor();
  const revoked = await fetch(`${server.url}/tools/api/auth/me/`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(revoked.status, 401);

  // A second login elsewhere, then "log out all other sessions".
  const other = await newUserContext(browser, server);
  await other.page.goto(`${server.url}/login`);
  await other.page.fill('#username', alice.username);
  await other.page.fill('#password', alice.password);
  await other.page.click('#login-form button[type=submit]');
  await other.page.waitForURL(/enhanced/);
  await page.reload();
  await page.locator('#session-list li').nth(1).waitFor();
  await page.click('#logout-others');
  await page.locator('#session-status', { hasText: '已退出其他会话 1 个' }).waitFor();
  // The other browser's socket is closed (1008 session ended) and its page goes to the login page by itself.
  await other.page.waitForURL(/\/login/, { timeout: 15000 });
  await screenshot(page, 'desktop-settings');
  assert.deepEqual(page.errors, []);
  assert.ok(bob.id);
});
