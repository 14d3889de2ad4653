// Screenshots of the main pages (desktop light, desktop dark, phone) against TOLLGATE_URL
// (e2e/mock-server.mjs has seeded usage for root). Output: e2e-artifacts/screens/.
import { chromium } from 'playwright-core';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const BASE = (process.env.TOLLGATE_URL ?? 'http://localhost:3999').replace(/\/+$/, '');
const OUT = fileURLToPath(new URL('../e2e-artifacts/screens/', import.meta.url));
const PAGES = ['/', '/dashboard', '/token', '/topup', '/log', '/channel', '/user', '/redemption', '/setting', '/profile'];

await mkdir(OUT, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
for (const [name, opts] of [
  ['light', { viewport: { width: 1366, height: 900 }, colorScheme: 'light' }],
  ['dark', { viewport: { width: 1366, height: 900 }, colorScheme: 'dark' }],
  ['phone', { viewport: { width: 390, height: 844 }, colorScheme: 'light', isMobile: true, hasTouch: true }],
]) {
  const ctx = await browser.newContext(opts);
  const page = await ctx.newPage();
  await page.goto(`${BASE}/login`);
  await page.getByTestId('login-username').fill(process.env.ROOT_USERNAME ?? 'root');
  await page.getByTestId('login-password').fill(process.env.ROOT_PASSWORD ?? '123456');
  await page.getByTestId('login-submit').click();
  await page.waitForURL(/\/dashboard/);
  for (const p of PAGES) {
    await page.goto(BASE + p);
    await page.waitForLoadState('networkidle');
    await page.waitForTimeout(600);
    await page.screenshot({ path: `${OUT}${name}-${p.slice(1) || 'home'}.png`, fullPage: name !== 'phone' });
  }
  if (name === 'phone') {
    await page.getByTestId('burger').click();
    await page.waitForTimeout(400);
    await page.screenshot({ path: `${OUT}phone-menu.png` });
  }
  await ctx.close();
}
await browser.close();
console.log('screens in', OUT);
