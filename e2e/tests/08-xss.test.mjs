// Hostile text renders as text and runs nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, newUserContext, register, apiToken, apiCall, screenshot } from '../lib/harness.mjs';

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

test('markup and javascript: links in messages and profiles are shown as typed', async () => {
  const a = await newUserContext(browser, server);
  const b = await newUserContext(browser, server);
  await register(a.page, server, { displayName: 'Alice' });
  const mallory = await register(b.page, server, { displayName: '<b>Mallory</b><img src=x onerror=alert(2)>' });
  await a.page.evaluate(() => {
    window.alert = () => {
      window.__xss = true;
    };
  });
  const token = await apiToken(server, mallory.username, mallory.password);
  await apiCall(server, token, 'PATCH', '/user/me/profile/', { bio: '<script>window.__xss=1</script>', first_name: '"><svg onload=alert(3)>' });
  const hostile = [
    '<img src=x onerror=alert(1)>',
    'javascript:alert(1)',
    '[click](javascript:alert(1)) and <a href="javascript:alert(1)">link</a>',
    'JaVaScRiPt:alert(1)//https://example.com',
    'safe https://example.com/?q=<script>alert(1)</script> end',
  ];
  for (const content of hostile) await apiCall(server, token, 'POST', '/chat/general/send/', { content });
  await a.page.locator('.bubble', { hasText: 'safe https://example.com' }).waitFor();

  const bubbles = a.page.locator('#message-rows .msg:not(.own) .bubble');
  const texts = await bubbles.allTextContents();
  for (const content of hostile) assert.ok(texts.includes(content), `shown exactly as typed: ${content}`);
  assert.equal(await a.page.locator('#message-rows img[src="x"], #message-rows script, #message-rows svg').count(), 0);
  const links = await a.page.locator('#message-rows a').evaluateAll((els) => els.map((el) => ({ href: el.href, rel: el.rel, target: el.target, text: el.textContent })));
  assert.ok(links.length >= 1);
  for (const link of links) {
    assert.match(link.href, /^https:\/\//, `only http(s) links: ${link.href}`);
    assert.equal(link.rel, 'noopener noreferrer');
    assert.equal(link.target, '_blank');
  }
  // The hostile display name, bio and real name are text in the sidebar and the profile card.
  const person = a.page.locator('.participant', { hasText: 'Mallory' });
  await person.waitFor();
  assert.match(await person.innerText(), /<b>Mallory<\/b><img src=x onerror=alert\(2\)>/);
  await person.click();
  const card = a.page.locator('dialog[open]');
  await card.locator('.bio', { hasText: '<script>window.__xss=1</script>' }).waitFor();
  await screenshot(a.page, 'desktop-xss-as-text');
  await a.page.keyboard.press('Escape');
  await a.page.goto(`${server.url}/u/${mallory.username}`);
  await a.page.locator('.bio', { hasText: '<script>' }).waitFor();
  await a.page.waitForTimeout(300);
  assert.equal(await a.page.evaluate(() => window.__xss), undefined);
  assert.deepEqual(a.page.errors, [], 'no alert dialog, no script error');
});

test('pages send a strict Content-Security-Policy', async () => {
  const response = await fetch(`${server.url}/login`);
  const csp = response.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /style-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
});
