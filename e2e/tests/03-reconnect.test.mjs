// The server dies (SIGKILL) and comes back while Bob keeps sending through the
// API; Alice's page reconnects by itself and shows every message once, in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, newUserContext, register, apiToken, apiCall, screenshot, bubbleTexts } from '../lib/harness.mjs';

let server;
let browser;
before(async () => {
  server = await new Server(['--message-rate', '100', '--message-burst', '100']).start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Sends with retries (same client_id), as a careful bot would while the server is down. */
async function sendUntilStored(token, room, content, clientId) {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    try {
      return await apiCall(server, token, 'POST', `/chat/${room}/send/`, { content, client_id: clientId });
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`could not send ${content}`);
}

test('a page reconnects after a server restart and shows every message exactly once, in order', async () => {
  const a = await newUserContext(browser, server);
  const b = await newUserContext(browser, server);
  await register(a.page, server, { displayName: 'Alice' });
  const bob = await register(b.page, server, { displayName: 'Bob' });
  await b.context.close();
  const token = await apiToken(server, bob.username, bob.password);
  await a.page.locator('#room-title', { hasText: 'general' }).waitFor();

  const sent = [];
  const sendBatch = async (from, to) => {
    for (let i = from; i < to; i += 1) {
      const content = `msg ${String(i).padStart(3, '0')}`;
      await sendUntilStored(token, 'general', content, `e2e-${i}`);
      sent.push(content);
    }
  };
  await sendBatch(0, 5);
  await a.page.locator('.bubble', { hasText: 'msg 004' }).waitFor();

  // Kill the server while sends go on; they fail and are retried until it is back.
  const sending = sendBatch(5, 25);
  await new Promise((r) => setTimeout(r, 150));
  await server.kill();
  await a.page.locator('#conn-pill:not([data-state="connected"])').waitFor();
  await screenshot(a.page, 'desktop-reconnecting');
  await new Promise((r) => setTimeout(r, 1500));
  await server.start();
  await sending;
  await sendBatch(25, 30);

  await a.page.locator('#conn-pill[data-state="connected"]').waitFor({ timeout: 40000 });
  await a.page.locator('.bubble', { hasText: 'msg 029' }).waitFor({ timeout: 20000 });
  const shown = (await bubbleTexts(a.page)).filter((t) => t.startsWith('msg '));
  assert.deepEqual(shown, sent, 'every message once, in order');
  const seqs = await a.page.locator('#message-rows .row').evaluateAll((rows) => rows.map((r) => Number(r.dataset.seq)));
  assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
  assert.equal(new Set(seqs).size, seqs.length);
  await screenshot(a.page, 'desktop-reconnected');
  assert.deepEqual(a.page.errors, []);
});
