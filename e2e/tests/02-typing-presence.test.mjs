// Typing indicator comes and goes; a closed browser goes grey for the others.
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

test('typing shows and clears; presence dot turns grey when a user closes the page', async () => {
  const a = await newUserContext(browser, server);
  const b = await newUserContext(browser, server, { locale: 'en-US' });
  await register(a.page, server, { displayName: '张三' });
  await register(b.page, server, { displayName: 'Bob' });
  // Both are in the default room `general`.
  await a.page.locator('#room-title', { hasText: 'general' }).waitFor();
  await b.page.locator('#room-title', { hasText: 'general' }).waitFor();

  const bobInA = a.page.locator('.participant', { hasText: 'Bob' });
  await bobInA.locator('.status-dot.online').waitFor();

  await a.page.locator('#composer-input').pressSequentially('你好');
  // Bob registered with an English browser, so his page is in English.
  await b.page.locator('#typing', { hasText: '张三 is typing…' }).waitFor();
  await screenshot(b.page, 'desktop-typing');
  // Clearing the box stops typing at once.
  await a.page.fill('#composer-input', '');
  await a.page.locator('#composer-input').dispatchEvent('input');
  await b.page.locator('#typing:empty').waitFor();

  // Typing then sending: the indicator goes when the message arrives.
  await a.page.locator('#composer-input').pressSequentially('hi');
  await b.page.locator('#typing', { hasText: '张三' }).waitFor();
  await a.page.press('#composer-input', 'Enter');
  await b.page.locator('.bubble', { hasText: 'hi' }).waitFor();
  await b.page.locator('#typing:empty').waitFor();

  // Bob closes his browser: Alice sees him go offline.
  await b.context.close();
  await bobInA.locator('.status-dot:not(.online)').waitFor({ timeout: 10000 });
  assert.equal(await bobInA.getAttribute('data-online'), 'false');
  await screenshot(a.page, 'desktop-presence-offline');
  assert.deepEqual(a.page.errors, []);
});
