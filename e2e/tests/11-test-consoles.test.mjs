// The original system's two WebSocket test pages work against this server.
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

test('the raw console connects and shows frames; the friendly tester chats', async () => {
  const { page } = await newUserContext(browser, server);
  await register(page, server, { displayName: 'Console' });

  await page.goto(`${server.url}/static/websocket_test.html`);
  await page.locator('#who', { hasText: 'logged in as' }).waitFor();
  await page.click('#connect-button');
  await page.locator('#state', { hasText: 'connected' }).waitFor();
  await page.locator('#log li', { hasText: '"type":"connection_established"' }).waitFor();
  await page.click('[data-frame="ping"]');
  await page.click('#send-button');
  await page.locator('#log li', { hasText: '"type":"pong"' }).waitFor();
  await screenshot(page, 'console-raw');

  await page.goto(`${server.url}/static/test_websocket.html`);
  await page.locator('#who', { hasText: '@' }).waitFor();
  await page.click('#connect-button');
  await page.locator('#state', { hasText: 'connected' }).waitFor();
  await page.fill('#text', '来自测试页的问候');
  await page.click('#send-button');
  await page.locator('#messages li.own', { hasText: '来自测试页的问候' }).waitFor();
  await page.click('#ping');
  await page.locator('#rtt', { hasText: 'RTT' }).waitFor();
  await screenshot(page, 'console-friendly');
  assert.deepEqual(page.errors, []);
});
