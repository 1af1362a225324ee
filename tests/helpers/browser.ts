import { access } from 'node:fs/promises';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';

/** Debian's chromium (scripts/lib.sh installs it for tests); CHROMIUM_PATH overrides. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Waits on the page: generous, since the server side runs ansible and ssh on two cores. */
export const UI_WAIT_MS = 15_000;

export async function launchBrowser(): Promise<Browser> {
  await access(CHROMIUM_PATH).catch(() => {
    throw new Error(
      `no chromium at ${CHROMIUM_PATH}: scripts/test.sh installs Debian's chromium (or set CHROMIUM_PATH)`,
    );
  });
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    // Root in a container: no user namespaces for the sandbox; small /dev/shm.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
}

/** One headless chromium for the enclosing describe block (or file). */
export function useBrowser(): { get browser(): Browser } {
  let current: Browser | undefined;
  beforeAll(async () => {
    current = await launchBrowser();
  }, 60_000);
  afterAll(async () => {
    await current?.close();
    current = undefined;
  }, 30_000);
  return {
    get browser(): Browser {
      if (!current) throw new Error('no browser: useBrowser() is up between its hooks only');
      return current;
    },
  };
}

export interface DashboardPage {
  context: BrowserContext;
  page: Page;
  /**
   * What went wrong in the page: uncaught errors, console errors (CSP violations among them)
   * and failed requests for the dashboard's own files.
   */
  problems: string[];
  /** The last WebSocket frames, both ways, for a failing test to show what the page saw. */
  frames: string[];
  close(): Promise<void>;
}

const FRAMES_KEPT = 60;
const FRAME_CHARS = 400;

/**
 * A fresh context (its own sessionStorage) with a page on the dashboard. `path` defaults to
 * `/ui/`; the page has loaded, not yet signed in.
 */
export async function openDashboard(
  browser: Browser,
  baseUrl: string,
  path = '/ui/',
): Promise<DashboardPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(UI_WAIT_MS);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    // A refused token is an expected 401 from the ticket endpoint, which the console reports.
    if (/status of 401/.test(text)) return;
    problems.push(`console: ${text}`);
  });
  const frames: string[] = [];
  const keep = (line: string) => {
    frames.push(line.length > FRAME_CHARS ? `${line.slice(0, FRAME_CHARS)}…` : line);
    if (frames.length > FRAMES_KEPT) frames.shift();
  };
  page.on('websocket', (ws) => {
    keep(`open ${ws.url().replace(/ticket=[^&]*/, 'ticket=…')}`);
    ws.on('framesent', (f) => keep(`> ${String(f.payload)}`));
    ws.on('framereceived', (f) => keep(`< ${String(f.payload)}`));
    ws.on('socketerror', (err) => keep(`socketerror ${err}`));
    ws.on('close', () => keep('close'));
  });
  page.on('requestfailed', (req) => {
    const url = new URL(req.url());
    if (url.pathname.startsWith('/ui/')) {
      problems.push(`requestfailed: ${url.pathname} ${req.failure()?.errorText ?? ''}`);
    }
  });
  await page.goto(baseUrl + path);
  return { context, page, problems, frames, close: () => context.close() };
}

/** A CSS selector for a data-testid (values hold `/`, `:` and `.`; quoted, so they are fine). */
export function testId(id: string, extra = ''): string {
  return `[data-testid="${id.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"]${extra}`;
}

/** Type a token into the sign-in form and submit it. */
export async function submitToken(page: Page, token: string): Promise<void> {
  await page.locator(testId('token-input')).fill(token);
  await page.locator(testId('token-submit')).click();
}

/** Sign in and wait until the dashboard is live (the WebSocket is open). */
export async function signIn(page: Page, token: string): Promise<void> {
  await submitToken(page, token);
  await page.locator(testId('dashboard')).waitFor({ state: 'visible' });
  await page.locator(testId('conn-status', '[data-state="open"]')).waitFor();
}
