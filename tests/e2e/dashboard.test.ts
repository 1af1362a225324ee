import type { WebSocketRoute } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nsExec, startSshd, stopSshd } from '../../src/lab/index.ts';
import {
  openDashboard,
  signIn,
  submitToken,
  testId,
  useBrowser,
  type DashboardPage,
} from '../helpers/browser.ts';
import { useLab } from '../helpers/lab.ts';
import { startTestServer, TOKENS, type TestServer } from '../helpers/server.ts';

// The dashboard in headless Chromium against a real server watching a real lab: every change
// reaches the page over the WebSocket. Waits are generous (UI_WAIT_MS on each selector); no
// test asserts on how long anything took.
const T = 90_000;
const API_ROUTE = '203.0.113.10/32';
const DRIFT_ROUTE = '203.0.113.11/32';
const HAND_ROUTE = '203.0.113.99/32';
const MARKUP = '<img src=x onerror="window.pwned=1"><b>bold</b>';

describe('the dashboard, given a server watching a lab of 2 hosts', { timeout: T }, () => {
  const fleet = useLab(2);
  const chromium = useBrowser();
  let server: TestServer;
  let dash: DashboardPage | undefined;

  beforeAll(async () => {
    server = await startTestServer({
      INVENTORY: fleet.lab.inventoryPath,
      WATCH_HOSTS: 'true',
      // A route removed by hand must stay removed for the drift test.
      REPAIR_DRIFT: 'false',
    });
  }, T);
  afterAll(async () => {
    await server?.close();
  }, T);

  /** A page on the dashboard; closed, and checked for page errors, after the test. */
  async function open(path?: string): Promise<DashboardPage> {
    dash = await openDashboard(chromium.browser, server.url, path);
    return dash;
  }
  afterEach(async (ctx) => {
    const d = dash;
    dash = undefined;
    if (!d) return;
    if (ctx.task.result?.state === 'fail') {
      // What the page held and heard, to tell a UI fault from a server one.
      const text = await d.page
        .locator('body')
        .innerText()
        .catch(() => '');
      console.error(`page text:\n${text}\n\nWebSocket frames:\n${d.frames.join('\n')}`);
    }
    await d.close();
    expect(d.problems, 'errors in the page').toEqual([]);
  });

  it('when / is opened, then it lands on the dashboard, which serves its files with a CSP', async () => {
    const res = await fetch(server.url + '/', { redirect: 'manual' });
    expect([301, 302, 303, 307, 308]).toContain(res.status);
    expect(new URL(res.headers.get('location')!, server.url).pathname).toBe('/ui/');
    const { page } = await open('/');
    expect(new URL(page.url()).pathname).toBe('/ui/');
    await page.locator(testId('login')).waitFor({ state: 'visible' });
    for (const file of ['/ui/', '/ui/app.js', '/ui/app.css']) {
      const r = await fetch(server.url + file);
      expect(r.status, file).toBe(200);
      expect(r.headers.get('content-security-policy'), file).toMatch(/default-src 'self'/);
    }
  });

  it('when a wrong token is given, then it is refused; when the right one is, then the hosts show, across a reload, until forgotten', async () => {
    const { page } = await open();
    await page.locator(testId('login')).waitFor({ state: 'visible' });
    expect(await page.locator(testId('dashboard')).isVisible()).toBe(false);

    await submitToken(page, 'not-a-token-0123456789');
    const error = page.locator(testId('login-error'));
    await error.waitFor({ state: 'visible' });
    expect(await error.textContent()).toMatch(/refused/i);
    expect(await page.locator(testId('dashboard')).isVisible()).toBe(false);

    await signIn(page, TOKENS.viewer);
    for (const host of fleet.lab.hosts) {
      await page.locator(testId(`host-${host.name}`, '[data-reachable="true"]')).waitFor();
    }
    // The first host is shown, with its interfaces and the lab address on eth0.
    const h1 = fleet.lab.hosts[0]!;
    await page.locator(testId(`host-detail-${h1.name}`)).waitFor();
    await page.locator(testId(`iface-${h1.name}-eth0`)).waitFor();
    const v4Len = fleet.lab.prefixV4.split('/')[1];
    await page.locator(testId(`addr-${h1.name}-${h1.ipv4}/${v4Len}`)).waitFor();

    // The token lasts for the tab: a reload goes straight to the hosts.
    await page.reload();
    await page.locator(testId(`host-${h1.name}`)).waitFor();
    expect(await page.locator(testId('login')).isVisible()).toBe(false);

    await page.locator(testId('forget-token')).click();
    await page.locator(testId('login')).waitFor({ state: 'visible' });
    await page.reload();
    await page.locator(testId('login')).waitFor({ state: 'visible' });
    expect(await page.locator(testId('dashboard')).isVisible()).toBe(false);
  });

  it('when a route is added through the API, then it shows under its host as managed, active and in sync, with its run', async () => {
    const { page } = await open();
    await signIn(page, TOKENS.viewer);
    await page.locator(testId('host-h1')).click();
    await page.locator(testId('host-detail-h1')).waitFor();

    const res = await server.request('POST', '/v1/routes', {
      token: 'operator',
      body: { host: 'h1', to: API_ROUTE, dev: 'eth0', comment: MARKUP },
    });
    expect([201, 202], res.text).toContain(res.status);
    const route = Array.isArray(res.body?.items) ? res.body.items[0].route : res.body;

    const row = page.locator(testId(`route-h1-${API_ROUTE}`, '[data-managed="true"]'));
    await row.waitFor();
    await page
      .locator(testId(`route-h1-${API_ROUTE}`, '[data-status="active"][data-sync="in_sync"]'))
      .waitFor();
    expect(await row.getAttribute('data-route-id')).toBe(route.id);
    // A comment is data: shown as text, never parsed as markup.
    expect(await row.locator(testId('comment')).textContent()).toBe(MARKUP);
    expect(await page.locator('[data-testid="detail"] img').count()).toBe(0);
    expect(await page.evaluate(() => (window as { pwned?: number }).pwned)).toBeUndefined();

    // The run that applied it is in the runs panel, finished.
    const after = await server.request('GET', `/v1/routes/${route.id}`, { token: 'viewer' });
    const runId = after.body.sync.run_id as string;
    expect(runId).toBeTruthy();
    await page.locator(testId(`run-${runId}`, '[data-status="succeeded"]')).waitFor();
  });

  it('when a managed route is removed by hand, then it shows as desired but missing from the kernel', async () => {
    const res = await server.request('POST', '/v1/routes', {
      token: 'operator',
      body: { host: 'h1', to: DRIFT_ROUTE, dev: 'eth0' },
    });
    expect([201, 202], res.text).toContain(res.status);
    const { page } = await open();
    await signIn(page, TOKENS.viewer);
    await page.locator(testId('host-h1')).click();
    await page.locator(testId(`route-h1-${DRIFT_ROUTE}`, '[data-managed="true"]')).waitFor();

    await nsExec(fleet.lab, 'h1', ['ip', 'route', 'del', DRIFT_ROUTE, 'dev', 'eth0']);
    await page.locator(testId(`route-h1-${DRIFT_ROUTE}`)).waitFor({ state: 'detached' });
    const missing = page.locator(testId(`desired-h1-${DRIFT_ROUTE}`, '[data-status="active"]'));
    await missing.waitFor();
    expect(await missing.locator(testId('why')).textContent()).toMatch(/missing|applying/);
  });

  it('when a route is added by hand in a host, then it shows under that host as unmanaged', async () => {
    const { page } = await open();
    await signIn(page, TOKENS.viewer);
    await page.locator(testId('host-h2')).click();
    await page.locator(testId('host-detail-h2')).waitFor();

    await nsExec(fleet.lab, 'h2', ['ip', 'route', 'add', HAND_ROUTE, 'dev', 'eth0']);
    const row = page.locator(testId(`route-h2-${HAND_ROUTE}`));
    await row.waitFor();
    expect(await row.getAttribute('data-managed')).toBe('false');
    expect(await row.getAttribute('data-status')).toBeNull();
    // h1 does not show h2's route.
    await page.locator(testId('host-h1')).click();
    await page.locator(testId('host-detail-h1')).waitFor();
    expect(await page.locator(testId(`route-h1-${HAND_ROUTE}`)).count()).toBe(0);
  });

  it('when a playbook runs, then the runs panel follows it host by host; when it is canceled, then it shows canceled', async () => {
    const { page } = await open();
    await signIn(page, TOKENS.viewer);
    // pause.yml pings every host, then pauses on the controller until canceled.
    const res = await server.request('POST', '/v1/runs?wait=0', {
      body: { playbook: 'pause', limit: ['h1', 'h2'] },
    });
    expect(res.status, res.text).toBe(202);
    const id = res.body.id as string;
    try {
      await page.locator(testId(`run-${id}`, '[data-status="running"]')).waitFor();
      const progress = page.locator(testId(`run-progress-${id}`));
      await progress.waitFor();
      for (const host of ['h1', 'h2']) {
        const row = progress.locator(testId(`run-${id}-progress-${host}`));
        await row.waitFor();
        await expect.poll(() => row.innerText(), { timeout: 15_000 }).toMatch(/ping/);
      }
      await expect.poll(() => progress.innerText(), { timeout: 15_000 }).toMatch(/task: pause/);
    } finally {
      const cancel = await server.request('POST', `/v1/runs/${id}/cancel`, { token: 'operator' });
      expect(cancel.status, cancel.text).toBe(200);
    }
    await page.locator(testId(`run-${id}`, '[data-status="canceled"]')).waitFor();
    await page.locator(testId(`run-progress-${id}`)).waitFor({ state: 'detached' });
  });

  it('when the WebSocket drops, then the page reconnects with a new ticket, resumes from the seqs it holds, and keeps following', async () => {
    const { page } = await open();
    const sockets: WebSocketRoute[] = [];
    const servers: WebSocketRoute[] = [];
    const subscribes: { topics: string[]; since?: Record<string, number> }[] = [];
    /** What the server sent on the second connection. */
    const answers: { type: string; topic: string | null }[] = [];
    await page.routeWebSocket(/\/v1\/ws\b/, (ws) => {
      const upstream = ws.connectToServer();
      sockets.push(ws);
      servers.push(upstream);
      const n = sockets.length;
      ws.onMessage((m) => {
        const msg = JSON.parse(String(m));
        if (msg.type === 'subscribe') subscribes.push(msg);
        upstream.send(m);
      });
      upstream.onMessage((m) => {
        const msg = JSON.parse(String(m));
        if (n === 2 && msg.type !== 'pong') answers.push({ type: msg.type, topic: msg.topic });
        ws.send(m);
      });
    });
    await signIn(page, TOKENS.viewer);
    await page.locator(testId('host-h1')).click();
    await page.locator(testId(`iface-h1-eth0`)).waitFor();
    expect(subscribes[0]).toMatchObject({ topics: ['hosts/*', 'routes', 'firewall', 'runs'] });
    expect(subscribes[0]!.since).toBeUndefined();

    // Drop both ends, then change the host while the page is away.
    await servers[0]!.close({ code: 1001, reason: 'test drop' });
    await sockets[0]!.close({ code: 1001, reason: 'test drop' });
    await nsExec(fleet.lab, 'h1', ['ip', 'route', 'add', '203.0.113.77/32', 'dev', 'eth0']);

    await page.locator(testId('conn-status', '[data-state="open"]')).waitFor();
    await page.locator(testId('route-h1-203.0.113.77/32', '[data-managed="false"]')).waitFor();
    expect(sockets.length).toBe(2);
    expect(sockets[1]!.url()).not.toBe(sockets[0]!.url()); // a new ticket
    const resumed = subscribes.find((s) => s.since !== undefined);
    expect(resumed?.topics).toEqual(
      expect.arrayContaining(['hosts/*', 'routes', 'firewall', 'runs']),
    );
    expect(resumed?.since).toMatchObject({
      'hosts/h1': expect.any(Number),
      'hosts/h2': expect.any(Number),
      routes: expect.any(Number),
    });
    // The server resumed the topics whose seqs it still had (or sent them whole): either way,
    // the page ends current on every topic it asked for (the topics answer one after another).
    const topics = ['hosts/h1', 'hosts/h2', 'routes', 'firewall', 'runs'];
    const answered = (t: string) =>
      answers.some((a) => a.topic === t && (a.type === 'resumed' || a.type === 'full'));
    for (let i = 0; i < 300 && !topics.every(answered); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const topic of topics) {
      expect(answers, topic).toContainEqual({
        type: expect.stringMatching(/^(resumed|full)$/),
        topic,
      });
    }
    await nsExec(fleet.lab, 'h1', ['ip', 'route', 'del', '203.0.113.77/32', 'dev', 'eth0']);
    await page.locator(testId('route-h1-203.0.113.77/32')).waitFor({ state: 'detached' });
  });

  it("when a host's sshd stops, then it shows unreachable with the error; when it starts again, then reachable", async () => {
    const { page } = await open();
    await signIn(page, TOKENS.viewer);
    const h2 = page.locator(testId('host-h2'));
    await page.locator(testId('host-h2', '[data-reachable="true"]')).waitFor();

    await stopSshd(fleet.lab, 'h2');
    try {
      await page.locator(testId('host-h2', '[data-reachable="false"]')).waitFor();
      expect(await page.locator(testId('host-h2-error')).textContent()).not.toBe('');
      // h1 is untouched.
      expect(await page.locator(testId('host-h1')).getAttribute('data-reachable')).toBe('true');
    } finally {
      await startSshd(fleet.lab, 'h2');
    }
    await page.locator(testId('host-h2', '[data-reachable="true"]')).waitFor();
    expect(await h2.getAttribute('data-watch')).toBe('watching');
  });
});
