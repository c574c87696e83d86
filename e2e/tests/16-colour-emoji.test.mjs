// Emoji are drawn by a colour emoji font wherever they appear (issue 16,
// point 1): Chromium reports which platform font drew each node's glyphs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, newUserContext, register, screenshot } from '../lib/harness.mjs';

const COLOUR_EMOJI = /^(Noto Color Emoji|Apple Color Emoji|Segoe UI Emoji)$/;

let server;
let browser;
let a;
before(async () => {
  server = await new Server().start();
  browser = await launchBrowser();
  a = await newUserContext(browser, server);
  await register(a.page, server, { displayName: 'Emoji' });
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The platform fonts that drew the first node matching `selector`, with their glyph counts. */
async function fontsOf(page, selector) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('DOM.enable');
  await cdp.send('CSS.enable');
  const { root } = await cdp.send('DOM.getDocument', { depth: -1 });
  const { nodeId } = await cdp.send('DOM.querySelector', { nodeId: root.nodeId, selector });
  assert.ok(nodeId, `${selector} is on the page`);
  const { fonts } = await cdp.send('CSS.getPlatformFontsForNode', { nodeId });
  await cdp.detach();
  return fonts;
}

/** How many glyphs of the node a colour emoji font drew, and which other fonts drew any. */
function split(fonts) {
  const colour = fonts.filter((f) => COLOUR_EMOJI.test(f.familyName)).reduce((n, f) => n + f.glyphCount, 0);
  const others = fonts.filter((f) => !COLOUR_EMOJI.test(f.familyName)).map((f) => f.familyName);
  return { colour, others };
}

test('emoji in the picker, in messages and in tags are drawn in colour', async () => {
  const page = a.page;
  await page.click('#emoji-button');
  const cell = page.locator('#emoji-picker .emoji-cells button', { hasText: '😊' }).first();
  await cell.waitFor();
  await cell.evaluate((el) => el.setAttribute('data-font-probe', 'picker'));
  const picker = split(await fontsOf(page, '[data-font-probe="picker"]'));
  assert.ok(picker.colour >= 1, `😊 in the picker is drawn by a colour emoji font (fonts: ${JSON.stringify(picker)})`);
  assert.deepEqual(picker.others, [], 'and by nothing else');
  await screenshot(page, 'desktop-emoji-colour-picker');
  await page.keyboard.press('Escape');

  // A message mixing text, a face, a cup (U+2615, which DejaVu Sans also draws) and a ZWJ family.
  await page.locator('#composer-input').fill('tea ☕ and 😊 with 👨‍👩‍👧‍👦');
  await page.keyboard.press('Enter');
  const bubble = page.locator('#message-rows .bubble', { hasText: 'tea' }).last();
  await bubble.waitFor();
  await bubble.evaluate((el) => el.setAttribute('data-font-probe', 'message'));
  const message = split(await fontsOf(page, '[data-font-probe="message"]'));
  // ☕, 😊 and the family (one glyph once shaped): three colour glyphs at least.
  assert.ok(message.colour >= 3, `the message's emoji are drawn in colour (fonts: ${JSON.stringify(message)})`);
  assert.ok(!message.others.some((f) => /emoji/i.test(f)), 'no monochrome emoji font');

  // The automatic tags carry emoji (💻, 🆕) before their names.
  const tag = page.locator('#participants .tag').first();
  await tag.waitFor();
  await tag.evaluate((el) => el.setAttribute('data-font-probe', 'tag'));
  const tags = split(await fontsOf(page, '[data-font-probe="tag"]'));
  assert.ok(tags.colour >= 1, `a tag's emoji is drawn in colour (fonts: ${JSON.stringify(tags)})`);
  await screenshot(page, 'desktop-emoji-colour-message');
  assert.deepEqual(page.errors, []);
});
