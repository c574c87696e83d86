// 375×812 phone: one screen at a time (the room list, then a room), participants as a drawer, no sideways scrolling.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, newUserContext, register, screenshot } from '../lib/harness.mjs';

let server;
let browser;
const phone = { viewport: { width: 375, height: 812 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true };
before(async () => {
  server = await new Server().start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

async function noHorizontalOverflow(page, what) {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  assert.ok(scroll <= width, `${what}: page is ${scroll}px wide in a ${width}px viewport`);
}

test('drawers open and close, and nothing overflows at 375 px', async () => {
  const { page } = await newUserContext(browser, server, phone);
  await page.goto(`${server.url}/login`);
  await noHorizontalOverflow(page, 'login');
  await screenshot(page, 'mobile-login');
  await register(page, server, { displayName: '手机用户' });
  await noHorizontalOverflow(page, 'app');
  const rooms = page.locator('#rooms-panel');
  const participants = page.locator('#participants-panel');
  // A phone starts at the room list (Telegram/WhatsApp style); a tap opens a room.
  await rooms.locator('.room-item', { hasText: 'general' }).waitFor({ state: 'visible' });
  await screenshot(page, 'mobile-rooms-list');
  await rooms.locator('.room-item', { hasText: 'general' }).tap();
  await page.locator('#composer-input').waitFor({ state: 'visible' });
  assert.equal(await rooms.isVisible(), false, 'the room replaces the list');
  assert.equal(await participants.isVisible(), false, 'participants drawer starts closed');
  await page.fill('#composer-input', 'Sent from a phone 📱 with a long unbreakable word Supercalifragilisticexpialidociouslyextraordinary https://example.com/a/very/long/path/that/goes/on');
  await page.locator('#send-button').tap();
  await page.locator('#message-rows .msg.own .bubble', { hasText: 'Sent from a phone' }).waitFor();
  await noHorizontalOverflow(page, 'app with a long message');
  await screenshot(page, 'mobile-chat');

  // Back to the list, and into the room again.
  await page.locator('#open-rooms').tap();
  await rooms.locator('.room-item').first().waitFor({ state: 'visible' });
  assert.equal(await page.locator('#chat').isVisible(), false);
  await rooms.locator('.room-item', { hasText: 'general' }).tap();
  await page.locator('#composer-input').waitFor({ state: 'visible' });
  assert.equal(await rooms.isVisible(), false, 'picking a room shows it');
  await page.locator('#room-subtitle .part:not(.kind)').first().waitFor();

  await page.locator('#toggle-participants').tap();
  await participants.locator('.participant').first().waitFor({ state: 'visible' });
  await page.waitForTimeout(300);
  await screenshot(page, 'mobile-participants-drawer');
  await page.keyboard.press('Escape');
  await page.waitForTimeout(300);
  assert.equal(await participants.isVisible(), false, 'Esc closes the drawer');
  await page.locator('#toggle-participants').tap();
  await participants.locator('.participant').first().waitFor({ state: 'visible' });
  await page.locator('#scrim').tap({ position: { x: 20, y: 400 } });
  await page.waitForTimeout(300);
  assert.equal(await participants.isVisible(), false, 'tapping outside closes the drawer');

  // Touch targets: the header and composer buttons are at least 44 px.
  for (const id of ['#open-rooms', '#toggle-participants', '#emoji-button', '#send-button']) {
    const box = await page.locator(id).boundingBox();
    assert.ok(box.width >= 44 && box.height >= 44, `${id} is ${box.width}×${box.height}`);
  }
  await page.goto(`${server.url}/settings`);
  await noHorizontalOverflow(page, 'settings');
  await screenshot(page, 'mobile-settings');
  assert.deepEqual(page.errors, []);
});

test('works at 320 px wide', async () => {
  const { page } = await newUserContext(browser, server, { ...phone, viewport: { width: 320, height: 640 } });
  await register(page, server);
  await noHorizontalOverflow(page, 'app at 320 px');
  await screenshot(page, 'mobile-320');
});
