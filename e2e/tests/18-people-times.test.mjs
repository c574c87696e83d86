// People and times (issue 16, points 5 and 6): quiet single-line tags in the
// participants list; a direct room's side panel is the other person's profile
// with their local time, and its header says when they were last seen; times
// follow the language's 12/24 h habit; runs of joins and leaves read as one
// line; long messages fold; a few emoji alone are large; the typing line is
// not slanted; a wide screen keeps the conversation a readable width.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, newUserContext, register, apiToken, apiCall, screenshot, pageApi as api } from '../lib/harness.mjs';

let server;
let browser;
before(async () => {
  server = await new Server(['--message-rate', '1000', '--message-burst', '1000']).start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

let botCounter = 0;
/** A user made over the API only (never opens a page), with a bearer token. */
async function bot(displayName) {
  botCounter += 1;
  // Join and leave notices name people by username: a readable one.
  const username = `${displayName.toLowerCase()}${Date.now().toString(36).slice(-4)}${botCounter}`;
  const password = 'correct-horse-1';
  const response = await fetch(`${server.url}/tools/api/auth/register/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password, display_name: displayName }),
  });
  assert.equal(response.status, 201, `register ${username}`);
  const token = await apiToken(server, username, password);
  return { username, token, call: (method, path, body) => apiCall(server, token, method, path, body) };
}

async function openRoom(page, roomId) {
  await page.goto(`${server.url}/tools/chat/enhanced/${encodeURIComponent(roomId)}/`);
  await page.locator('#conn-pill[data-state="connected"]').waitFor();
  await page.locator('#message-rows .row').first().waitFor();
}

/** An Etc/GMT zone where the hour is now `hour` (so a message just sent shows it). */
function zoneWhereHourIs(hour) {
  let offset = (hour - new Date().getUTCHours() + 24) % 24;
  if (offset > 14) offset -= 24;
  return offset >= 0 ? `Etc/GMT-${offset}` : `Etc/GMT+${-offset}`;
}

async function send(page, text) {
  await page.fill('#composer-input', text);
  await page.press('#composer-input', 'Enter');
}

async function setLook(page, { language, style }) {
  await api(page, 'PATCH', '/user/me/profile/', { language, theme: style });
}

test('tags in the participants list are one small line; the profile card shows them in full', async () => {
  const { page } = await newUserContext(browser, server, { locale: 'en-US' });
  await register(page, server, { displayName: 'Alexandra Longname' });
  for (const [language, style] of [['en', 'light'], ['en', 'dark'], ['zh-CN', 'light'], ['zh-CN', 'dark']]) {
    await setLook(page, { language, style });
    await page.goto(`${server.url}/`);
    await page.locator('#conn-pill[data-state="connected"]').waitFor();
    const me = page.locator('.participant', { hasText: 'Alexandra Longname' });
    await me.locator('.tags .tag').first().waitFor();
    const sizes = await me.evaluate((el) => {
      const name = el.querySelector('.p-name');
      const tags = el.querySelector('.tags');
      const tops = new Set([...tags.querySelectorAll('.tag')].map((tag) => Math.round(tag.getClientRects()[0].top)));
      return {
        name: parseFloat(getComputedStyle(name).fontSize),
        tags: parseFloat(getComputedStyle(tags).fontSize),
        tagsHeight: tags.getBoundingClientRect().height,
        nameHeight: name.getBoundingClientRect().height,
        lines: tops.size,
        whiteSpace: getComputedStyle(tags).whiteSpace,
      };
    });
    assert.ok(sizes.tags < sizes.name, `${language}: tags (${sizes.tags}px) are smaller than the name (${sizes.name}px)`);
    assert.ok(sizes.tagsHeight < sizes.nameHeight, `${language}: the tag line (${sizes.tagsHeight}px) is lower than the name (${sizes.nameHeight}px)`);
    assert.equal(sizes.lines, 1, `${language}: tags stay on one line`);
    assert.equal(sizes.whiteSpace, 'nowrap');
    await screenshot(page, `people-participants-1280-${language}-${style}`);
  }
  // The profile card has them as full pills.
  await page.locator('.participant', { hasText: 'Alexandra Longname' }).click();
  const card = page.locator('dialog[open]');
  await card.locator('.tags:not(.tags-compact) .tag').first().waitFor();
  assert.ok((await card.locator('.tags .tag').count()) >= 2);
  await page.setViewportSize({ width: 1920, height: 1080 });
  await screenshot(page, 'people-profile-card-1920-zh-CN-dark');
  await page.keyboard.press('Escape');
  await screenshot(page, 'people-participants-1920-zh-CN-dark');
  await setLook(page, { language: 'en', style: 'light' });
  await page.goto(`${server.url}/`);
  await page.locator('.participant .tags .tag').first().waitFor();
  await screenshot(page, 'people-participants-1920-en-light');
  assert.deepEqual(page.errors, []);
});

test('a direct room: the side panel is the other person, with local time; the header says when they were last seen', async () => {
  const a = await newUserContext(browser, server, { locale: 'en-US' });
  // Bob's browser is in Tokyo: the app reports the zone by itself.
  const b = await newUserContext(browser, server, { locale: 'en-US', timezoneId: 'Asia/Tokyo' });
  await register(a.page, server, { displayName: 'Alice' });
  const bob = await register(b.page, server, { displayName: 'Bob Builder' });
  await setLook(a.page, { language: 'en', style: 'light' });
  await api(b.page, 'PATCH', '/user/me/profile/', { bio: 'Can we fix it?', first_name: 'Robert', last_name: 'Builder' });
  await b.page.waitForFunction(async () => (await (await fetch('/tools/api/auth/me/')).json()).data.time_zone === 'Asia/Tokyo');

  const room = await api(a.page, 'POST', `/chat/direct/${bob.id}/`);
  await api(a.page, 'POST', `/chat/${room.room_id}/send/`, { content: 'hello Bob' });
  await openRoom(a.page, room.room_id);
  const card = a.page.locator('#peer-profile .peer-card');
  await card.waitFor();
  assert.equal(await a.page.locator('#participants').isHidden(), true, 'no member list in a direct room');
  assert.equal((await a.page.locator('#participants-title-text').textContent()).trim(), 'Profile');
  await card.locator('.peer-name', { hasText: 'Bob Builder' }).waitFor();
  await card.locator('.peer-username', { hasText: `@${bob.username}` }).waitFor();
  await card.locator('.peer-real', { hasText: 'Robert Builder' }).waitFor();
  await card.locator('.peer-bio', { hasText: 'Can we fix it?' }).waitFor();
  assert.ok((await card.locator('.tags .tag').count()) >= 1, 'tags');
  assert.ok((await card.locator('img.avatar.xl').boundingBox()).width >= 80, 'a large avatar');
  const expected = await a.page.evaluate(() => new Intl.DateTimeFormat('en-US', { hour: 'numeric', minute: '2-digit', timeZone: 'Asia/Tokyo' }).format(new Date()));
  const shown = (await card.locator('.peer-local-time time').textContent()).trim();
  // The minute may have turned between the two readings.
  assert.ok(shown === expected || shown.slice(0, -2) === expected.slice(0, -2), `local time ${shown} (expected about ${expected})`);
  await card.locator('.peer-local-time', { hasText: 'Asia/Tokyo' }).waitFor();
  await a.page.locator('#room-subtitle', { hasText: /^online$/ }).waitFor();
  await card.locator('.peer-presence.online').waitFor();
  await screenshot(a.page, 'people-direct-profile-1280-en-light');
  // The big avatar opens the profile card, which has the local time too.
  await card.locator('.peer-avatar').click();
  const dialog = a.page.locator('dialog[open]');
  await dialog.locator('.local-time').waitFor();
  await dialog.locator('.card-presence', { hasText: /^online$/ }).waitFor();
  await a.page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });

  // Bob goes away: ~5–6 s after his last socket closes the server says so.
  await b.context.close();
  await a.page.locator('#room-subtitle', { hasText: /^last seen / }).waitFor({ timeout: 20000 });
  assert.match(await a.page.locator('#room-subtitle').textContent(), /^last seen (just now|\d+ minutes? ago)$/);
  await card.locator('.peer-presence:not(.online)', { hasText: /^last seen/ }).waitFor();
  await screenshot(a.page, 'people-direct-last-seen-1280-en-light');

  // Dark, Chinese, wide.
  await setLook(a.page, { language: 'zh-CN', style: 'dark' });
  await a.page.setViewportSize({ width: 1920, height: 1080 });
  await openRoom(a.page, room.room_id);
  await a.page.locator('#peer-profile .peer-card').waitFor();
  await a.page.locator('#room-subtitle', { hasText: /^(刚刚在线|最后在线：)/ }).waitFor();
  await a.page.locator('#peer-profile .peer-local-time time').waitFor();
  await screenshot(a.page, 'people-direct-profile-1920-zh-CN-dark');

  // The public profile page says one or the other, never both.
  await a.page.goto(`${server.url}/u/${bob.username}`);
  const presence = (await a.page.locator('.presence').textContent()).trim();
  assert.match(presence, /^最后在线：\d{4}-\d{2}-\d{2}$/);
  const text = await a.page.locator('main').textContent();
  assert.equal(text.split('最后在线').length, 2, `"last seen" once: ${text}`);
  assert.ok(!text.replace('最后在线', '').includes('在线'), `no "online" beside it: ${text}`);
  assert.deepEqual(a.page.errors, []);
});

test('times: "3:35 AM" in English (no leading zero), 24 h in Chinese, 24 h for an en-GB browser', async () => {
  for (const [locale, language, hour, pattern] of [
    ['en-US', 'en', 3, /^3:\d{2}\s?AM$/],
    ['zh-CN', 'zh-CN', 15, /^15:\d{2}$/],
    ['en-GB', 'en', 15, /^15:\d{2}$/],
  ]) {
    const { page, context } = await newUserContext(browser, server, { locale, timezoneId: zoneWhereHourIs(hour) });
    await register(page, server);
    await setLook(page, { language, style: 'light' });
    await page.goto(`${server.url}/`);
    await page.locator('#conn-pill[data-state="connected"]').waitFor();
    await send(page, `the time in ${locale}`);
    const time = page.locator('#message-rows .msg.own', { hasText: `the time in ${locale}` }).locator('time');
    await time.waitFor();
    const text = (await time.textContent()).trim();
    // Unless the hour turned between choosing the zone and sending.
    if (Number(text.match(/^\d+/)[0]) === hour) assert.match(text, pattern, `${locale}: ${text}`);
    else assert.match(text, language === 'en' && locale === 'en-US' ? /^\d{1,2}:\d{2}\s?[AP]M$/ : /^\d{2}:\d{2}$/);
    assert.ok(!/^0/.test(text) || locale !== 'en-US', `no leading zero: ${text}`);
    assert.deepEqual(page.errors, []);
    await context.close();
  }
});

test('joins and leaves in a row read as one line, and it keeps collapsing as more arrive', async () => {
  const a = await newUserContext(browser, server, { locale: 'en-US' });
  const z = await newUserContext(browser, server);
  await register(a.page, server, { displayName: 'Alice' });
  const zoe = await register(z.page, server, { displayName: '佐伊' });
  await setLook(a.page, { language: 'en', style: 'light' });
  const room = await api(a.page, 'POST', '/chat/rooms/', { name: 'Lobby', room_type: 'public', members: [zoe.id] });
  await api(a.page, 'POST', `/chat/${room.room_id}/send/`, { content: 'welcome, everyone' });
  const names = ['Bob', 'Carol', 'Dave', 'Erin', 'Frank'];
  const bots = [];
  for (const name of names) {
    const b = await bot(name);
    await b.call('POST', `/chat/${room.room_id}/join/`);
    bots.push(b);
  }
  await openRoom(a.page, room.room_id);
  const run = a.page.locator('#message-rows .system.run');
  await run.waitFor();
  assert.equal(await run.count(), 1, 'one line for the run');
  assert.equal(await a.page.locator('#message-rows .system:visible', { hasText: 'joined' }).count(), 1, 'no other join lines shown');
  const [bob, carol] = bots.map((b) => b.username);
  assert.match(await run.locator('> span').textContent(), new RegExp(`^${bob}, ${carol} and 3 others joined`));

  // More arrive live: still one line.
  const george = await bot('George');
  await george.call('POST', `/chat/${room.room_id}/join/`);
  await run.locator('> span', { hasText: new RegExp(`^${bob}, ${carol} and 4 others joined`) }).waitFor();
  await bots[1].call('POST', `/chat/${room.room_id}/leave/`);
  await run.locator('> span', { hasText: new RegExp(`^${bob}, ${carol} and 4 others joined, ${carol} left`) }).waitFor();
  assert.equal(await a.page.locator('#message-rows .system.run').count(), 1);

  // Every notice behind a button.
  const toggle = run.locator('.run-toggle');
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
  await toggle.focus();
  await a.page.keyboard.press('Enter');
  assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
  assert.equal(await run.locator('.run-details li').count(), 7);
  await screenshot(a.page, 'people-joins-collapsed-1280-en-light');

  // A message ends the run: the next join is a line of its own.
  await api(a.page, 'POST', `/chat/${room.room_id}/send/`, { content: 'hi all' });
  await a.page.locator('.bubble', { hasText: 'hi all' }).waitFor();
  const henry = await bot('Henry');
  await henry.call('POST', `/chat/${room.room_id}/join/`);
  await a.page.locator('#message-rows .system:not(.run)', { hasText: new RegExp(`^${henry.username} joined$`) }).waitFor();

  // Chinese, dark, wide.
  await setLook(z.page, { language: 'zh-CN', style: 'dark' });
  await z.page.setViewportSize({ width: 1920, height: 1080 });
  await openRoom(z.page, room.room_id);
  await z.page.locator('#message-rows .system.run > span', { hasText: new RegExp(`^${bob}、${carol} 等 6 人加入了聊天室，${carol} 离开了聊天室`) }).waitFor();
  await screenshot(z.page, 'people-joins-collapsed-1920-zh-CN-dark');
  assert.deepEqual(a.page.errors, []);
  assert.deepEqual(z.page.errors, []);
  await a.context.close();
  await z.context.close();
});

test('a long message folds behind "Show more"; one to three emoji alone are large; typing is not slanted', async () => {
  const a = await newUserContext(browser, server);
  const b = await newUserContext(browser, server);
  await register(a.page, server, { displayName: '甲' });
  await register(b.page, server, { displayName: '乙' });
  const long = Array.from({ length: 30 }, (_, i) => `line ${i + 1} of a long message`).join('\n');
  await send(a.page, long);
  const bubble = a.page.locator('#message-rows .bubble.long', { hasText: 'line 1 of' });
  await bubble.waitFor();
  const more = bubble.locator('.fold-toggle');
  assert.equal((await more.textContent()).trim(), '展开全文');
  assert.equal(await more.getAttribute('aria-expanded'), 'false');
  const folded = (await bubble.boundingBox()).height;
  await more.focus();
  await a.page.keyboard.press('Enter');
  assert.equal(await more.getAttribute('aria-expanded'), 'true');
  assert.equal((await more.textContent()).trim(), '收起');
  const open = (await bubble.boundingBox()).height;
  assert.ok(open > folded * 1.5, `unfolded ${open}px vs folded ${folded}px`);
  await a.page.keyboard.press('Enter');
  assert.equal(await more.getAttribute('aria-expanded'), 'false');
  assert.ok(Math.abs((await bubble.boundingBox()).height - folded) < 2);
  // A short one is not folded.
  await send(a.page, 'short and sweet');
  await a.page.locator('#message-rows .bubble', { hasText: 'short and sweet' }).waitFor();
  assert.equal(await a.page.locator('#message-rows .bubble', { hasText: 'short and sweet' }).locator('.fold-toggle').count(), 0);

  // Emoji: one to three alone (a ZWJ family and a flag count as one each) are large.
  for (const text of ['🎉', '👨‍👩‍👧‍👦 🇨🇳', '👍🏽👍🏽❤️']) {
    await send(a.page, text);
    await a.page.locator('#message-rows .bubble.jumbo', { hasText: text }).waitFor();
  }
  for (const text of ['ok 🎉', '🎉🎉🎉🎉']) {
    await send(a.page, text);
    await a.page.locator('#message-rows .bubble:not(.jumbo)', { hasText: text }).waitFor();
  }
  const [big, normal] = await Promise.all([
    a.page.locator('#message-rows .bubble.jumbo').first().evaluate((el) => parseFloat(getComputedStyle(el).fontSize)),
    a.page.locator('#message-rows .bubble', { hasText: 'short and sweet' }).evaluate((el) => parseFloat(getComputedStyle(el).fontSize)),
  ]);
  assert.ok(big >= normal * 2.5, `emoji ${big}px vs text ${normal}px`);
  await screenshot(a.page, 'people-long-and-emoji-1280-zh-CN-light');

  // Typing in Chinese: "正在输入…" upright.
  await b.page.locator('#composer-input').pressSequentially('你好');
  const typing = a.page.locator('#typing', { hasText: '乙 正在输入…' });
  await typing.waitFor();
  assert.equal(await typing.evaluate((el) => getComputedStyle(el).fontStyle), 'normal');
  assert.deepEqual(a.page.errors, []);
  await a.context.close();
  await b.context.close();
});

test('on a 1920 px screen the conversation keeps a readable width; 1280 is as before', async () => {
  const a = await newUserContext(browser, server, { viewport: { width: 1920, height: 1080 } });
  const b = await newUserContext(browser, server);
  await register(a.page, server, { displayName: 'Wide' });
  await register(b.page, server, { displayName: 'Other' });
  await send(b.page, 'from the other side');
  await a.page.locator('.bubble', { hasText: 'from the other side' }).waitFor();
  await send(a.page, 'my own words');
  // Confirmed (out of the pending rows) and in the timeline.
  await a.page.locator('#message-rows .msg.own .bubble', { hasText: 'my own words' }).waitFor();
  const wide = await a.page.evaluate(() => {
    const other = document.querySelector('#message-rows .msg:not(.own) .bubble').getBoundingClientRect();
    const own = [...document.querySelectorAll('#message-rows .msg.own .bubble')].at(-1).getBoundingClientRect();
    return { rows: document.querySelector('#message-rows').getBoundingClientRect().width, span: own.right - other.left, panel: document.querySelector('#messages').clientWidth };
  });
  assert.ok(wide.panel > 1000, `the chat panel is wide (${wide.panel}px)`);
  assert.ok(wide.rows <= 960, `rows are at most 960 px wide (${wide.rows}px)`);
  assert.ok(wide.span <= 960, `own and others' messages are close (${wide.span}px apart)`);
  await screenshot(a.page, 'people-wide-1920-zh-CN-light');

  const narrow = await b.page.evaluate(() => {
    const scroller = document.querySelector('#messages');
    const style = getComputedStyle(scroller);
    return { rows: document.querySelector('#message-rows').getBoundingClientRect().width, inner: scroller.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) };
  });
  assert.ok(Math.abs(narrow.rows - narrow.inner) < 1, `at 1280 the rows fill the panel (${narrow.rows} vs ${narrow.inner})`);
  assert.deepEqual(a.page.errors, []);
  await a.context.close();
  await b.context.close();
});

test('settings: the time zone comes from the browser, can be chosen by hand, and a choice stays', async () => {
  const { page, context } = await newUserContext(browser, server, { timezoneId: 'America/Sao_Paulo' });
  await register(page, server);
  const zoneOf = () => page.evaluate(async () => (await (await fetch('/tools/api/auth/me/')).json()).data.time_zone);
  await page.waitForFunction(async () => (await (await fetch('/tools/api/auth/me/')).json()).data.time_zone === 'America/Sao_Paulo');
  await page.goto(`${server.url}/settings#appearance`);
  const input = page.locator('#time-zone-input');
  assert.equal(await input.inputValue(), 'America/Sao_Paulo');
  assert.equal(await page.locator('#time-zone-browser').isHidden(), true);
  await input.fill('Europe/Paris');
  await page.locator('#time-zone-browser', { hasText: 'America/Sao_Paulo' }).waitFor();
  await page.locator('#appearance-form button[type="submit"]').click();
  await page.locator('#appearance-status.ok').waitFor();
  assert.equal(await zoneOf(), 'Europe/Paris');
  await screenshot(page, 'people-settings-time-zone-zh-CN');
  // Back in the app, the browser does not overwrite the choice.
  await page.goto(`${server.url}/`);
  await page.locator('#conn-pill[data-state="connected"]').waitFor();
  await page.waitForLoadState('networkidle');
  assert.equal(await zoneOf(), 'Europe/Paris');
  // Something that is not a zone name is refused with the server's reason.
  await page.goto(`${server.url}/settings#appearance`);
  await input.fill('Mars/Olympus Mons');
  await page.locator('#appearance-form button[type="submit"]').click();
  await page.locator('#appearance-status.error').waitFor();
  assert.equal(await zoneOf(), 'Europe/Paris');
  // The browser's zone is one click away.
  await page.locator('#time-zone-browser').click();
  assert.equal(await input.inputValue(), 'America/Sao_Paulo');
  assert.deepEqual(page.errors, []);
  await context.close();
});
