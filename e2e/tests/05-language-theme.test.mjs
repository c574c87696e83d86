// Language switch (both ways), dark style, and each theme mode's accent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, newUserContext, register, screenshot } from '../lib/harness.mjs';

let server;
let browser;
let page;
before(async () => {
  server = await new Server().start();
  browser = await launchBrowser();
  ({ page } = await newUserContext(browser, server));
  await register(page, server, { displayName: '李雷' });
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

async function saveAppearance(changes) {
  await page.goto(`${server.url}/settings#appearance`);
  const form = page.locator('#appearance-form');
  if (changes.mode) await form.locator(`input[name="theme_mode"][value="${changes.mode}"]`).check({ force: true });
  if (changes.style) await form.locator(`input[name="theme"][value="${changes.style}"]`).check({ force: true });
  if (changes.language) await form.locator('#language-select').selectOption(changes.language);
  const saved = page.waitForResponse((r) => r.url().includes('/user/me/profile') && r.request().method() === 'PATCH');
  await form.locator('button[type="submit"]').click();
  assert.equal((await saved).status(), 200);
  if (changes.language) await page.waitForLoadState('load');
}

test('switching the language to English and back changes every page', async () => {
  await page.goto(`${server.url}/`);
  await page.locator('#send-button', { hasText: '发送' }).waitFor();
  await saveAppearance({ language: 'en' });
  await page.locator('h1', { hasText: 'Settings' }).waitFor();
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  await page.goto(`${server.url}/`);
  await page.locator('#send-button', { hasText: 'Send' }).waitFor();
  await page.locator('#conn-text', { hasText: 'Connected' }).waitFor();
  await screenshot(page, 'desktop-english');
  // Errors from the API are shown translated too.
  await page.goto(`${server.url}/settings#security`);
  await page.fill('input[name="current_password"]', 'wrong-password-1');
  await page.fill('input[name="new_password"]', 'another-horse-1');
  await page.fill('input[name="new_password2"]', 'another-horse-1');
  await page.click('#password-form button[type="submit"]');
  await page.locator('#password-status', { hasText: 'Wrong username or password.' }).waitFor();

  await saveAppearance({ language: 'zh-CN' });
  await page.locator('h1', { hasText: '设置' }).waitFor();
  assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
});

test('dark style is applied and remembered', async () => {
  await saveAppearance({ style: 'dark' });
  await page.goto(`${server.url}/`);
  assert.equal(await page.getAttribute('html', 'data-style'), 'dark');
  const background = await page.locator('#composer').evaluate((el) => getComputedStyle(el).backgroundColor);
  const [r, g, b] = background.match(/\d+/g).map(Number);
  assert.ok(r + g + b < 160, `dark composer background, got ${background}`);
  const text = await page.locator('#room-title').evaluate((el) => getComputedStyle(el).color);
  const [tr, tg, tb] = text.match(/\d+/g).map(Number);
  assert.ok(tr + tg + tb > 500, `light text on dark, got ${text}`);
  await page.locator('#conn-pill[data-state="connected"]').waitFor();
  await screenshot(page, 'desktop-dark');
  await saveAppearance({ style: 'light' });
  await page.goto(`${server.url}/`);
  const light = await page.locator('#composer').evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.equal(light, 'rgb(255, 255, 255)');
});

test('each theme mode has its own accent', async () => {
  const expected = { work: 'rgb(29, 78, 216)', life: 'rgb(21, 128, 61)', training: 'rgb(185, 28, 28)', emo: 'rgb(109, 40, 217)' };
  const seen = new Set();
  for (const [mode, colour] of Object.entries(expected)) {
    await saveAppearance({ mode });
    await page.goto(`${server.url}/`);
    assert.equal(await page.getAttribute('html', 'data-mode'), mode);
    const accent = await page.locator('#send-button').evaluate((el) => getComputedStyle(el).backgroundImage);
    assert.ok(accent.includes(colour), `${mode}: ${accent}`);
    seen.add(accent);
    // The tag pill follows the mode too.
    await page.locator(`.participant .tag-theme_mode-${mode}`).first().waitFor();
    await page.locator('#conn-pill[data-state="connected"]').waitFor();
    await screenshot(page, `desktop-mode-${mode}`);
  }
  assert.equal(seen.size, 4);
  await saveAppearance({ mode: 'work', style: 'auto' });
  assert.deepEqual(page.errors, []);
});
