// End-to-end flow against a running Tollgate (or e2e/mock-server.mjs):
//   TOLLGATE_URL=http://localhost:3000 MOCK_UPSTREAM_URL=http://localhost:4010 node e2e/run.mjs
// Uses Debian's Chromium (apt-get install -y chromium); never downloads a browser.
import { chromium } from 'playwright-core';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const BASE = (process.env.TOLLGATE_URL ?? 'http://localhost:3000').replace(/\/+$/, '');
const UPSTREAM = process.env.MOCK_UPSTREAM_URL ?? 'http://localhost:4010';
const ROOT_USER = process.env.ROOT_USERNAME ?? 'root';
const ROOT_PASS = process.env.ROOT_PASSWORD ?? '123456';
const ART = fileURLToPath(new URL('../e2e-artifacts/', import.meta.url));
const MODEL = 'gpt-3.5-turbo';
const suffix = Math.random().toString(36).slice(2, 8);
const NEW_USER = `e2e${suffix}`; // ≤ 12 chars
const NEW_PASS = `pw-${suffix}-ok`;

let shot = 0;
const log = (...a) => console.log('[e2e]', ...a);

async function snap(page, name) {
  shot += 1;
  const file = `${ART}${String(shot).padStart(2, '0')}-${name}.png`;
  await page.screenshot({ path: file, fullPage: true });
  log('screenshot', file);
}

async function go(page, path, name) {
  await page.goto(BASE + path);
  await page.waitForLoadState('networkidle');
  await page.waitForSelector('[data-testid="loading"]', { state: 'detached', timeout: 15000 }).catch(() => undefined);
  if (name) await snap(page, name);
}

async function login(page, username, password) {
  await go(page, '/login');
  await page.getByTestId('login-username').fill(username);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
  await page.waitForURL(/\/dashboard(\?|$)/, { timeout: 15000 });
  await page.waitForLoadState('networkidle');
  await snap(page, `dashboard-${username}`);
}

async function logout(page) {
  await page.getByTestId('user-menu').click();
  await page.getByTestId('logout').click();
  await page.waitForURL(/\/login(\?|$)/, { timeout: 15000 });
}

/** Reads a dashboard stat card: its shown text and its raw number (data-raw). */
async function readStat(page, testId) {
  const el = page.getByTestId(testId);
  await el.waitFor({ timeout: 15000 });
  return { text: (await el.textContent())?.trim() ?? '', raw: Number(await el.getAttribute('data-raw')) };
}

/** Retries `fn` (reloading between tries) until it returns a truthy value. */
async function eventually(page, fn, what, tries = 10) {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v) return v;
    await page.waitForTimeout(1000);
    await page.reload();
    await page.waitForLoadState('networkidle');
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function main() {
  await mkdir(ART, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => log('page error:', e.message));
  try {
    await go(page, '/', 'home');

    // 1. root signs in
    await login(page, ROOT_USER, ROOT_PASS);

    // 2. creates a Custom (8) channel pointing at the mock upstream
    await go(page, '/channel', 'channels-before');
    const channelName = `e2e-${suffix}`;
    await page.getByTestId('channel-add').click();
    await page.getByTestId('channel-form').waitFor();
    await page.getByTestId('channel-type').click();
    await page.getByRole('option', { name: 'Custom (8)' }).click();
    await page.getByTestId('channel-name').fill(channelName);
    await page.getByTestId('channel-base-url').fill(UPSTREAM);
    await page.getByTestId('channel-key').fill('sk-mock-upstream-key');
    await page.getByTestId('channel-models').fill(`${MODEL},`);
    await snap(page, 'channel-form');
    await page.getByTestId('channel-submit').click();
    await page.locator(`[data-testid="channel-row"][data-name="${channelName}"]`).waitFor({ timeout: 15000 });
    await snap(page, 'channels-after');

    // 3. creates a redemption code and reads it from the page
    await go(page, '/redemption', 'redemptions-before');
    await page.getByTestId('redemption-add').click();
    await page.getByTestId('redemption-name').fill(`e2e-${suffix}`);
    await page.getByTestId('redemption-count').fill('1');
    await page.getByTestId('redemption-quota').fill('5000000');
    await page.getByTestId('redemption-submit').click();
    const keysBox = page.getByTestId('redemption-keys');
    await keysBox.waitFor({ timeout: 15000 });
    const code = (await keysBox.inputValue()).trim().split('\n')[0];
    if (!/^[0-9a-f]{32}$/i.test(code)) throw new Error(`unexpected redemption code ${code}`);
    log('redemption code', code);
    await snap(page, 'redemption-created');
    await page.getByTestId('redemption-close').click();

    // 4. logout
    await logout(page);

    // 5. a new user signs up
    await go(page, '/register', 'register');
    await page.getByTestId('register-username').fill(NEW_USER);
    await page.getByTestId('register-password').fill(NEW_PASS);
    await page.getByTestId('register-password2').fill(NEW_PASS);
    await page.getByTestId('register-submit').click();
    await page.waitForURL(/\/login(\?|$)/, { timeout: 15000 });

    // 6. signs in
    await login(page, NEW_USER, NEW_PASS);

    // 7. redeems the code
    await go(page, '/topup', 'topup-before');
    await page.getByTestId('redeem-code').fill(code);
    await page.getByTestId('redeem-submit').click();
    await page.getByTestId('redeem-success').waitFor({ timeout: 15000 });
    await snap(page, 'topup-after');

    await go(page, '/dashboard');
    const quotaBefore = await readStat(page, 'stat-quota');
    const requestsBefore = await readStat(page, 'stat-requests');
    log('quota before call', quotaBefore);

    // 8. creates a token and reads its key from the UI
    await go(page, '/token', 'tokens-before');
    const tokenName = `e2e-${suffix}`;
    await page.getByTestId('token-add').click();
    await page.getByTestId('token-name').fill(tokenName);
    await page.getByTestId('token-submit').click();
    const row = page.locator(`[data-testid="token-row"][data-name="${tokenName}"]`);
    await row.waitFor({ timeout: 15000 });
    await row.getByTestId('token-show-key').click();
    const key = (await row.getByTestId('token-key').textContent())?.trim() ?? '';
    if (!key.startsWith('sk-') || key.includes('…')) throw new Error(`could not read the token key: ${key}`);
    await snap(page, 'tokens-after');

    // 9. calls the relay with it from node
    const res = await fetch(`${BASE}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hello from e2e' }] }),
    });
    const text = await res.text();
    log('relay', res.status, text.slice(0, 200));
    if (!res.ok) throw new Error(`relay call failed: ${res.status} ${text}`);

    // 10. the call shows up in the user's logs
    await go(page, '/log');
    await eventually(page, async () => (await page.locator(`[data-testid="log-row"][data-type="2"][data-model="${MODEL}"]`).count()) > 0, 'consume log row');
    await snap(page, 'logs');

    // 11. the dashboard quota moved
    await go(page, '/dashboard');
    const quotaAfter = await eventually(page, async () => {
      const v = await readStat(page, 'stat-quota');
      return v.raw < quotaBefore.raw ? v : null;
    }, 'dashboard quota change');
    const requestsAfter = await readStat(page, 'stat-requests');
    log('quota after call', quotaAfter, 'requests', requestsBefore.raw, '->', requestsAfter.raw);
    if (requestsAfter.raw <= requestsBefore.raw) throw new Error('request count did not increase');
    await snap(page, 'dashboard-after');

    await go(page, '/profile', 'profile');
    log('PASS');
  } catch (e) {
    await snap(page, 'failure').catch(() => undefined);
    throw e;
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error('[e2e] FAIL', e);
  process.exit(1);
});
