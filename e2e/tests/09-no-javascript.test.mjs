// Login, registration and logout work with JavaScript turned off (form POST + redirect),
// and the forms carry the CSRF token.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser } from '../lib/harness.mjs';

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

test('register, log out and log in again without JavaScript', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false, locale: 'en-US' });
  const page = await context.newPage();
  await page.goto(`${server.url}/`);
  assert.match(page.url(), /\/login\?next=%2F$/);
  assert.ok(await page.locator('input[name="csrfmiddlewaretoken"]').inputValue());
  await page.click('a[href="/register"]');
  await page.fill('#username', 'nojs-user');
  await page.fill('#password', 'correct-horse-1');
  await page.fill('#password2', 'different-horse-1');
  await page.click('#register-form button[type=submit]');
  await page.locator('#form-error', { hasText: 'The two passwords differ.' }).waitFor();
  assert.equal(await page.inputValue('#username'), 'nojs-user', 'the form keeps what was typed');
  await page.fill('#password', 'correct-horse-1');
  await page.fill('#password2', 'correct-horse-1');
  await page.click('#register-form button[type=submit]');
  await page.waitForURL(`${server.url}/`);
  await page.locator('#me-name', { hasText: 'nojs-user' }).waitFor();

  // Log out through the sidebar's form.
  await page.click('form[action="/logout"] button');
  await page.waitForURL(/\/login$/);
  await page.fill('#username', 'nojs-user');
  await page.fill('#password', 'wrong-password-1');
  await page.click('#login-form button[type=submit]');
  await page.locator('#form-error', { hasText: 'Wrong username or password.' }).waitFor();
  await page.fill('#password', 'correct-horse-1');
  await page.click('#login-form button[type=submit]');
  await page.waitForURL(`${server.url}/`);
  await page.locator('#me-name', { hasText: 'nojs-user' }).waitFor();
  await context.close();
});

test('a form without the CSRF token is refused', async () => {
  const response = await fetch(`${server.url}/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'username=nojs-user&password=correct-horse-1',
    redirect: 'manual',
  });
  assert.equal(response.status, 403);
  assert.equal(response.headers.get('set-cookie')?.includes('sessionid=') ?? false, false);
  assert.match(await response.text(), /reload|刷新/);
});

test('an unknown room is a friendly not-found page, and nothing is created', async () => {
  const context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();
  await page.goto(`${server.url}/login`);
  await page.fill('#username', 'nojs-user');
  await page.fill('#password', 'correct-horse-1');
  await page.click('#login-form button[type=submit]');
  await page.waitForURL(/enhanced|\/$/);
  const response = await page.goto(`${server.url}/tools/chat/enhanced/no-such-room/`);
  assert.equal(response.status(), 404);
  await page.locator('h1', { hasText: 'Room not found' }).waitFor();
  const rooms = await page.evaluate(async () => (await (await fetch('/tools/api/chat/rooms/')).json()).data.map((r) => r.room_id));
  assert.ok(!rooms.includes('no-such-room'));
  const missing = await page.evaluate(async () => (await fetch('/tools/api/chat/no-such-room/')).status);
  assert.equal(missing, 404);
  await context.close();
});
