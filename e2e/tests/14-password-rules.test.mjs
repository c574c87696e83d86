// Password rules shown where people choose one (registration form, settings),
// and the settings option to revoke API tokens with a password change.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Server, apiToken, artifacts, launchBrowser, newUserContext, register, screenshot } from '../lib/harness.mjs';

const phone = { viewport: { width: 375, height: 812 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true };

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

async function tryRegister(page, username, password, lang) {
  await page.goto(`${server.url}/register${lang ? `?lang=${lang}` : ''}`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.fill('#password2', password);
  await page.click('#register-form button[type=submit]');
  return page.locator('#form-error').innerText();
}

test('the registration form says why a password is refused (中文 and English)', async () => {
  const { page } = await newUserContext(browser, server);
  assert.equal(await tryRegister(page, 'carol', '12345678'), '这个密码太常见了，请换一个。');
  assert.equal(await tryRegister(page, 'carol', '        '), '密码不能全是空格。');
  assert.equal(await tryRegister(page, 'carol.lee', 'Carol.Lee'), '密码不能与用户名相同。');
  // The form keeps the username for the next try.
  assert.equal(await page.inputValue('#username'), 'carol.lee');
  await screenshot(page, 'desktop-register-password-refused-zh');
  assert.deepEqual(page.errors, []);

  const dark = await newUserContext(browser, server, { ...phone, locale: 'en-US', colorScheme: 'dark' });
  assert.equal(
    await tryRegister(dark.page, 'dave', 'Password', 'en'),
    'That password is one of the most common ones. Choose another.',
  );
  await screenshot(dark.page, 'phone-register-password-refused-en-dark');
  assert.deepEqual(dark.page.errors, []);
});

async function changePassword(page, current, next, { revokeTokens = false } = {}) {
  await page.fill('input[name="current_password"]', current);
  await page.fill('input[name="new_password"]', next);
  await page.fill('input[name="new_password2"]', next);
  if (revokeTokens) await page.check('#revoke-tokens');
  await page.click('#password-form button[type="submit"]');
}

const bearerStatus = async (token) =>
  (await fetch(`${server.url}/tools/api/auth/me/`, { headers: { Authorization: `Bearer ${token}` } })).status;

test('settings: a refused new password says why; tokens are kept unless the box is ticked', async () => {
  const { page } = await newUserContext(browser, server);
  const erin = await register(page, server, { displayName: 'Erin' });
  const kept = await apiToken(server, erin.username, erin.password);
  await page.goto(`${server.url}/settings#security`);
  const box = page.locator('#revoke-tokens');
  assert.equal(await box.isChecked(), false, 'off by default, as in the API');
  await page.locator('#revoke-tokens-hint').waitFor();

  await changePassword(page, erin.password, 'iloveyou');
  await page.locator('#password-status.error', { hasText: '这个密码太常见了，请换一个。' }).waitFor();
  await changePassword(page, erin.password, erin.username);
  await page.locator('#password-status.error', { hasText: '密码不能与用户名相同。' }).waitFor();

  // Without the box: the token still works.
  await changePassword(page, erin.password, 'another-horse-2');
  await page.locator('#password-status', { hasText: '密码已修改，已退出其他会话 1 个。' }).waitFor();
  assert.equal(await bearerStatus(kept), 200);

  // With it: every token goes, and the list shows it.
  const second = await apiToken(server, erin.username, 'another-horse-2');
  await page.reload();
  await page.locator('#token-list li').nth(1).waitFor();
  await changePassword(page, 'another-horse-2', 'third-horse-3', { revokeTokens: true });
  await page.locator('#password-status', { hasText: '已撤销 API 令牌 2 个' }).waitFor();
  assert.equal(await bearerStatus(kept), 401);
  assert.equal(await bearerStatus(second), 401);
  await page.locator('#token-list li', { hasText: 'e2e' }).waitFor({ state: 'detached' });
  assert.equal(await box.isChecked(), false, 'the form is reset');
  await page.locator('#security').scrollIntoViewIfNeeded();
  await page.check('#revoke-tokens');
  await page.locator('#security').screenshot({ path: join(artifacts, 'desktop-settings-password-zh.png') });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.locator('#security').screenshot({ path: join(artifacts, 'desktop-settings-password-zh-dark.png') });
  assert.deepEqual(page.errors, []);
});

test('settings in English, dark, on a phone: the option reads well', async () => {
  const { page } = await newUserContext(browser, server, { ...phone, locale: 'en-US', colorScheme: 'dark' });
  await register(page, server, { displayName: 'Finn' });
  await page.goto(`${server.url}/settings`);
  // The language is a profile setting: switch it through the API the page uses.
  await page.evaluate(async () => {
    const csrf = document.cookie.match(/csrftoken=([^;]+)/)[1];
    await fetch('/tools/api/user/me/profile/', {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf },
      body: JSON.stringify({ language: 'en' }),
    });
  });
  await page.goto(`${server.url}/settings#security`);
  await page.locator('label', { hasText: 'Also revoke all my API tokens' }).waitFor();
  await changePassword(page, 'correct-horse-1', '        ');
  await page.locator('#password-status.error', { hasText: 'A password cannot be only spaces.' }).waitFor();
  await page.locator('#security').scrollIntoViewIfNeeded();
  await screenshot(page, 'phone-settings-password-en-dark');
  await page.locator('#security').screenshot({ path: join(artifacts, 'phone-settings-password-section-en-dark.png') });
  assert.deepEqual(page.errors, []);
});
