// Every screen of the web app at desktop (1280×800), tablet (768×1024) and phone
// (390×844) size, light and dark, zh-CN and English: a screenshot of each in
// e2e/artifacts/screens/ to look at, and axe-core finds no serious or critical
// problem on any of them (at desktop and phone size, in light and in dark).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Server, launchBrowser, newUserContext, register, apiToken, apiCall, artifacts, seriousViolations } from '../lib/harness.mjs';

const SIZES = { desktop: { width: 1280, height: 800 }, tablet: { width: 768, height: 1024 }, phone: { width: 390, height: 844 } };
// axe runs in one look per style (its findings do not depend on the language:
// contrast depends on the style, structure on neither), which halves the time.
const LOOKS = [
  { lang: 'zh-CN', style: 'light', axe: true },
  { lang: 'zh-CN', style: 'dark' },
  { lang: 'en', style: 'light' },
  { lang: 'en', style: 'dark', axe: true },
];
const dir = join(artifacts, 'screens');
mkdirSync(dir, { recursive: true });

let server;
let browser;
let alice;
let aliceToken;
let bob;
let room;
let direct;
let invite;
before(async () => {
  server = await new Server().start();
  browser = await launchBrowser();
  // Bob and Carol register through the page; Alice is the one whose screens we look at.
  const setup = await newUserContext(browser, server);
  bob = await register(setup.page, server, { displayName: 'Bob Builder' });
  await setup.context.clearCookies();
  const carol = await register(setup.page, server, { displayName: '陈小红' });
  await setup.context.clearCookies();
  alice = await register(setup.page, server, { displayName: '爱丽丝' });
  await setup.context.close();
  aliceToken = await apiToken(server, alice.username, alice.password);
  const bobToken = await apiToken(server, bob.username, bob.password);
  const carolToken = await apiToken(server, carol.username, carol.password);
  room = await apiCall(server, aliceToken, 'POST', '/chat/rooms/', {
    name: '火星计划 Mars plan',
    room_type: 'group',
    description: 'Landing site, rockets and snacks · 着陆点、火箭和零食',
    members: [bob.id, carol.id],
  });
  const lines = [
    [bobToken, 'Morning! Did the new telemetry build land? 早上好！'],
    [carolToken, '已经部署到测试环境了，日志在 https://example.com/builds/1234 🚀'],
    [aliceToken, 'Great — I will review it after lunch.'],
    [bobToken, '😊'],
    [carolToken, '下午三点开会，记得带上着陆点的数据。\nMeeting at 3 pm, bring the landing-site data.'],
  ];
  for (const [token, content] of lines) await apiCall(server, token, 'POST', `/chat/${room.room_id}/send/`, { content });
  direct = await apiCall(server, aliceToken, 'POST', `/chat/direct/${bob.id}/`);
  await apiCall(server, bobToken, 'POST', `/chat/${direct.room_id}/send/`, { content: 'Lunch at 12:30? 🍜' });
  invite = await apiCall(server, aliceToken, 'POST', `/chat/${room.room_id}/invites/`, {});
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const openApp = async (page, roomId = room.room_id) => {
  await page.goto(`${server.url}/tools/chat/enhanced/${roomId}/`);
  await page.locator('#conn-pill[data-state="connected"]').waitFor();
  await page.locator('#message-rows .msg').first().waitFor();
};
/** On a phone the rooms panel is the room list screen, behind the back button. */
const showRoomsPanel = async (page) => {
  if (!(await page.locator('#show-shortcuts').isVisible())) await page.click('#open-rooms');
  await page.locator('#show-shortcuts').waitFor();
};
const openDialogBy = async (page, selector) => {
  // On a phone the buttons of the rooms panel are in its drawer.
  if (!(await page.locator(selector).isVisible())) await page.click('#open-rooms');
  await page.click(selector);
  await page.locator('dialog[open]').waitFor();
};

/** The screens, each reached from a fresh page of a logged-in (or, for `anonymous`, logged-out) user. */
const SCREENS = [
  { name: 'login', anonymous: true, show: (page, look) => page.goto(`${server.url}/login?lang=${look.lang}`) },
  { name: 'register', anonymous: true, show: (page, look) => page.goto(`${server.url}/register?lang=${look.lang}`) },
  { name: 'chat', show: (page) => openApp(page) },
  { name: 'direct', show: (page) => openApp(page, direct.room_id) },
  {
    name: 'rooms',
    sizes: ['tablet', 'phone'],
    show: async (page) => {
      await openApp(page);
      if (await page.locator('#open-rooms').isVisible()) await page.click('#open-rooms');
      await page.locator('#room-list li').first().waitFor();
    },
  },
  {
    name: 'participants',
    show: async (page) => {
      await openApp(page);
      if (!(await page.locator('#participants').isVisible())) await page.click('#toggle-participants');
      await page.locator('#participants li').first().waitFor();
    },
  },
  {
    name: 'emoji-picker',
    show: async (page) => {
      await openApp(page);
      await page.click('#emoji-button');
      await page.locator('#emoji-picker:not([hidden]) button').first().waitFor();
    },
  },
  { name: 'new-group', show: async (page) => (await openApp(page), openDialogBy(page, '#new-group')) },
  { name: 'new-direct', show: async (page) => (await openApp(page), openDialogBy(page, '#new-direct')) },
  { name: 'public-rooms', show: async (page) => (await openApp(page), openDialogBy(page, '#browse-public')) },
  {
    name: 'room-info',
    show: async (page) => {
      await openApp(page);
      await page.locator('#room-info:not([disabled])').click();
      await page.locator('dialog[open]').waitFor();
    },
  },
  {
    name: 'profile-card',
    show: async (page) => {
      await openApp(page);
      await page.locator('#message-rows .msg:not(.own) .avatar').first().click();
      await page.locator('dialog[open]').waitFor();
    },
  },
  {
    name: 'switcher',
    show: async (page) => {
      await openApp(page);
      await page.keyboard.press('Control+k');
      await page.locator('dialog.switcher[open] [role="option"]').first().waitFor();
    },
  },
  {
    name: 'shortcuts',
    show: async (page) => {
      await openApp(page);
      await showRoomsPanel(page);
      await page.click('#show-shortcuts');
      await page.locator('dialog.shortcuts-dialog[open]').waitFor();
    },
  },
  {
    name: 'confirm-logout',
    show: async (page) => {
      await openApp(page);
      await showRoomsPanel(page);
      await page.click('form[action="/logout"] button[type=submit]');
      await page.locator('dialog[open] .btn.danger-solid').waitFor();
    },
  },
  { name: 'settings', show: (page) => page.goto(`${server.url}/settings`) },
  {
    name: 'avatar-crop',
    show: async (page) => {
      await page.goto(`${server.url}/settings`);
      // Any picture will do: a screenshot of the page itself.
      const picture = await page.screenshot({ clip: { x: 0, y: 0, width: 300, height: 200 } });
      await page.setInputFiles('#avatar-input', { name: 'me.png', mimeType: 'image/png', buffer: picture });
      await page.locator('dialog.crop-dialog[open] .crop-image').waitFor();
    },
  },
  { name: 'profile-page', show: (page) => page.goto(`${server.url}/u/${bob.username}`) },
  { name: 'invite', show: (page) => page.goto(`${server.url}/invite/${invite.code}`) },
  { name: 'logout', show: (page) => page.goto(`${server.url}/logout`) },
  { name: 'not-found', show: (page) => page.goto(`${server.url}/no/such/page`) },
];

for (const look of LOOKS) {
  test(`every screen, ${look.lang} ${look.style}: screenshots at three sizes${look.axe ? ', no serious axe finding' : ''}`, async () => {
    await apiCall(server, aliceToken, 'PATCH', '/user/me/profile/', { language: look.lang, theme: look.style });
    const problems = [];
    for (const [size, viewport] of Object.entries(SIZES)) {
      const locale = look.lang;
      const anonymous = await browser.newContext({ viewport, locale, colorScheme: look.style });
      const user = await newUserContext(browser, server, { viewport, locale, colorScheme: look.style });
      await user.page.goto(`${server.url}/login`);
      await user.page.fill('#username', alice.username);
      await user.page.fill('#password', alice.password);
      await user.page.click('form button[type=submit]');
      await user.page.waitForURL((url) => url.pathname === "/" || url.pathname.startsWith("/tools/chat/enhanced/"));
      const anonymousPage = await anonymous.newPage();
      for (const screen of SCREENS) {
        if (screen.sizes && !screen.sizes.includes(size)) continue;
        const page = screen.anonymous ? anonymousPage : user.page;
        await screen.show(page, look);
        await page.evaluate(() => document.fonts.ready);
        const name = `${screen.name}-${look.lang}-${look.style}-${size}`;
        await page.screenshot({ path: join(dir, `${name}.png`), animations: 'disabled' });
        // The tablet's parts are the desktop's and the phone's, which axe has seen.
        if (look.axe && size !== 'tablet') for (const found of await seriousViolations(page)) problems.push(`${name}: ${found}`);
      }
      assert.deepEqual(user.page.errors, [], `page errors at ${size}`);
      await anonymous.close();
      await user.context.close();
    }
    assert.deepEqual(problems, []);
  });
}
