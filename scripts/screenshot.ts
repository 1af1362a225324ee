// Screenshot of the dashboard for the README, from a server that is already running (this
// starts nothing): opens /ui/ in headless Chromium, signs in, waits for the hosts, and
// writes a 1280x800 PNG.
//
//   ROUTEPLANE_API=http://127.0.0.1:8080 ROUTEPLANE_TOKEN=... npx tsx scripts/screenshot.ts
//
// Settings (env): ROUTEPLANE_API (default http://127.0.0.1:8080), ROUTEPLANE_TOKEN (required,
// any role), SCREENSHOT_HOST (the host to show; default the dashboard's first), SCREENSHOT_OUT
// (default docs/dashboard.png), CHROMIUM_PATH (default /usr/bin/chromium).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

const WAIT_MS = 30_000;

async function main(): Promise<void> {
  const api = (process.env.ROUTEPLANE_API || 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const token = process.env.ROUTEPLANE_TOKEN;
  if (!token) throw new Error('set ROUTEPLANE_TOKEN to an API token of the running server');
  const out = path.resolve(
    process.env.SCREENSHOT_OUT || path.join(import.meta.dirname, '..', 'docs', 'dashboard.png'),
  );
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  try {
    const context = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      deviceScaleFactor: 1,
    });
    context.setDefaultTimeout(WAIT_MS);
    const page = await context.newPage();
    await page.goto(`${api}/ui/`);
    await page.locator('[data-testid="token-input"]').fill(token);
    await page.locator('[data-testid="token-submit"]').click();
    const refused = page.locator('[data-testid="login-error"]');
    const live = page.locator('[data-testid="conn-status"][data-state="open"]');
    await Promise.race([live.waitFor(), refused.waitFor({ state: 'visible' })]);
    if (await refused.isVisible()) {
      throw new Error(`the dashboard did not sign in: ${await refused.textContent()}`);
    }
    // Hosts have arrived (their full snapshots), and one is shown.
    await page.locator('.host-item').first().waitFor();
    const host = process.env.SCREENSHOT_HOST;
    if (host) await page.locator(`[data-testid="host-${host}"]`).click();
    await page.locator('[data-testid^="host-detail-"]').waitFor();
    await page.locator('[data-testid^="host-detail-"] [data-testid^="iface-"]').first().waitFor();
    // The runs panel and late diffs: the page renders on animation frames.
    await page.waitForTimeout(1_000);
    await mkdir(path.dirname(out), { recursive: true });
    await page.screenshot({ path: out, fullPage: false });
    console.log(`wrote ${out}`);
  } finally {
    await browser.close();
  }
}

main().catch((err: unknown) => {
  console.error(`screenshot: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
