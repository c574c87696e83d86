// axe-core finds no serious or critical problem on the login, app and settings pages;
// the app can be used with the keyboard alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, newUserContext, register, seriousViolations } from '../lib/harness.mjs';

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

test('axe: login, register, app, settings and profile pages', async () => {
  const { page } = await newUserContext(browser, server);
  await page.goto(`${server.url}/login`);
  assert.deepEqual(await seriousViolations(page), [], 'login');
  await page.goto(`${server.url}/register`);
  assert.deepEqual(await seriousViolations(page), [], 'register');
  const me = await register(page, server, { displayName: 'Ally' });
  await page.fill('#composer-input', 'hello https://example.com');
  await page.press('#composer-input', 'Enter');
  await page.locator('#message-rows .msg.own').waitFor();
  assert.deepEqual(await seriousViolations(page), [], 'app');
  await page.click('#new-group');
  await page.locator('dialog[open]').waitFor();
  assert.deepEqual(await seriousViolations(page), [], 'new group dialog');
  await page.keyboard.press('Escape');
  await page.goto(`${server.url}/settings`);
  assert.deepEqual(await seriousViolations(page), [], 'settings');
  await page.goto(`${server.url}/u/${me.username}`);
  assert.deepEqual(await seriousViolations(page), [], 'profile');
});

test('keyboard only: reach the composer, send, open and close a dialog with Esc', async () => {
  const { page } = await newUserContext(browser, server);
  await register(page, server);
  await page.keyboard.press('Tab');
  const skip = await page.evaluate(() => document.activeElement.textContent);
  assert.match(skip, /跳到输入框/);
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'composer-input');
  await page.keyboard.type('typed without a mouse');
  await page.keyboard.press('Enter');
  await page.locator('#message-rows .bubble', { hasText: 'typed without a mouse' }).waitFor();

  await page.focus('#new-direct');
  await page.keyboard.press('Enter');
  const dialog = page.locator('dialog[open]');
  await dialog.waitFor();
  assert.ok(await dialog.evaluate((d) => d.contains(document.activeElement)), 'focus moves into the dialog');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  assert.equal(await page.evaluate(() => document.activeElement.id), 'new-direct', 'focus returns to the opener');
  // Focus is visible.
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none');
});
