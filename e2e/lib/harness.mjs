// What every browser test needs: the real Parley binary on a free port with a
// fresh data directory, Debian's Chromium, users, and screenshots to look at.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import AxeBuilder from '@axe-core/playwright';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = join(here, '..', '..');
export const artifacts = join(repo, 'e2e', 'artifacts');
mkdirSync(artifacts, { recursive: true });

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/lib/chromium/chromium';
const SERVER_START_MS = 30000;

let built = false;
/** The server binary: $PARLEY_BIN, else `cargo build` (a no-op after `cargo test`). */
export function serverBinary() {
  if (process.env.PARLEY_BIN) return process.env.PARLEY_BIN;
  if (!built) {
    execFileSync('cargo', ['build', '--quiet', '--bin', 'parley'], { cwd: repo, stdio: 'inherit' });
    built = true;
  }
  return join(repo, 'target', 'debug', 'parley');
}

/** A running server. `restart()` keeps its port and data; `kill()` is SIGKILL. */
export class Server {
  constructor(extraArgs = []) {
    this.dataDir = mkdtempSync(join(tmpdir(), 'parley-e2e-'));
    this.extraArgs = extraArgs;
    this.port = 0;
    this.proc = null;
    this.log = [];
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    const bind = `127.0.0.1:${this.port}`;
    const args = ['serve', '--bind', bind, '--data-dir', this.dataDir, '--log-format', 'json', ...this.extraArgs];
    const proc = spawn(serverBinary(), args, { env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stderr.on('data', (d) => this.log.push(d.toString()));
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${this.log.join('')}`)), SERVER_START_MS);
      let out = '';
      proc.stdout.on('data', (d) => {
        out += d.toString();
        const match = out.match(/Open http:\/\/127\.0\.0\.1:(\d+)\//);
        if (match) {
          clearTimeout(timer);
          this.port = Number(match[1]);
          resolve();
        }
      });
      proc.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code}:\n${this.log.join('')}`));
      });
    });
    proc.removeAllListeners('exit');
    return this;
  }

  /** SIGKILL: no goodbye to the clients, nothing flushed beyond what was committed. */
  async kill() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
  }

  async restart() {
    await this.kill();
    await this.start();
  }

  async stop() {
    const proc = this.proc;
    if (proc && proc.exitCode === null) {
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Debian's Chromium; `extraArgs` e.g. the fake microphone and camera for voice tests. */
export async function launchBrowser(extraArgs = []) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extraArgs],
  });
}

/**
 * A browser context for one user; collects page errors so a test can
 * assert none happened.
 */
export async function newUserContext(browser, server, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'zh-CN', ...options });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error' && !/Failed to load resource|WebSocket connection/.test(message.text())) page.errors.push(message.text());
  });
  page.on('dialog', (dialog) => {
    page.errors.push(`unexpected ${dialog.type()} dialog: ${dialog.message()}`);
    dialog.dismiss();
  });
  return { context, page };
}

let userCounter = 0;
/** Registers through the page's own form (no API shortcut) and lands in the app. */
export async function register(page, server, { username, displayName, password = 'correct-horse-1' } = {}) {
  userCounter += 1;
  const name = username || `user${Date.now().toString(36)}${userCounter}`;
  await page.goto(`${server.url}/register`);
  await page.fill('#username', name);
  if (displayName) await page.fill('#display_name', displayName);
  await page.fill('#password', password);
  await page.fill('#password2', password);
  await page.click('#register-form button[type=submit]');
  // The app opens a room (its URL replaces /), except on a phone, which starts at the room list.
  await page.waitForFunction(() => location.pathname.startsWith('/tools/chat/enhanced/') || document.querySelector('#app.no-room #room-list .room-item'));
  await page.locator('#conn-pill[data-state="connected"]').waitFor({ state: 'attached' });
  const me = await page.evaluate(async () => (await (await fetch('/tools/api/auth/me/')).json()).data);
  return { username: name, password, id: me.id, me };
}

/** A bearer token for a user, for sending through the API like a bot would. */
export async function apiToken(server, username, password) {
  const login = await fetch(`${server.url}/tools/api/auth/login/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const cookies = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const csrf = (await login.json()).data.csrf_token;
  const created = await fetch(`${server.url}/tools/api/auth/tokens/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Cookie: cookies, 'X-CSRFToken': csrf },
    body: JSON.stringify({ name: 'e2e' }),
  });
  return (await created.json()).data.token;
}

/** A JSON API call with a bearer token. */
export async function apiCall(server, token, method, path, body) {
  const response = await fetch(`${server.url}/tools/api${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  if (!json.success) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json.error)}`);
  return 'data' in json ? json.data : json;
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), animations: 'disabled' });
}

/** The text of every message bubble in the open room, in order. */
export async function bubbleTexts(page) {
  return page.locator('#message-rows .bubble').allTextContents();
}

/** The JSON API from inside a logged-in page, as the web app calls it (session cookie + CSRF header). */
export async function pageApi(page, method, path, body) {
  return page.evaluate(
    async ({ method, path, body }) => {
      const csrf = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/)?.[1] ?? '';
      const response = await fetch(`/tools/api${path}`, {
        method,
        headers: { 'Content-Type': 'application/json', 'X-CSRFToken': decodeURIComponent(csrf) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const json = await response.json();
      if (!json.success) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json.error)}`);
      return 'data' in json ? json.data : json;
    },
    { method, path, body },
  );
}

/** axe-core's serious and critical findings on the page (or the part `include` selects), one line each. */
export async function seriousViolations(page, include) {
  const builder = new AxeBuilder({ page });
  if (include) builder.include(include);
  const result = await builder.analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`);
}
