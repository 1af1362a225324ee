import { describe, expect, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import { createRoute, kernelHas, poll } from '../../helpers/routes.ts';
import { TOKENS, startTestServer, useTestServer } from '../../helpers/server.ts';

const T = 180_000;

/** One sample of the exposition: `name{labels} value`. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!;
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and (at least) these labels; 0 if none. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: several samples`);
  return found[0]?.value ?? 0;
}

async function scrape(url: string): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, samples: parse(text) };
}

describe('/metrics with METRICS_PORT=0, on a lab of 2 hosts', { timeout: T }, () => {
  const fleet = useLab(2);
  const server = useTestServer(
    () => ({
      INVENTORY: fleet.lab.inventoryPath,
      METRICS_PORT: '0',
      RECONCILE_RETRY_BASE_S: '30',
      RECONCILE_RETRY_MAX_S: '60',
    }),
    T,
  );

  it('when a route is applied, one is scheduled and the API is used, then the runs, lags, hosts and requests are counted by closed labels only', async () => {
    expect(server.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(server.metricsUrl).not.toContain(`:${server.port}/`);

    const to = '203.0.113.16/28';
    await createRoute(server, { host: 'h1', to, dev: 'eth0' });
    await kernelHas(fleet.lab, 'h1', { to });

    // Due in a second: fired by the scheduler, then applied.
    const later = '203.0.113.32/28';
    const scheduled = await createRoute(server, {
      host: 'h1',
      to: later,
      dev: 'eth0',
      create_at: new Date(Date.now() + 1_000).toISOString(),
    });
    expect(scheduled.status).toBe('pending');
    await kernelHas(fleet.lab, 'h1', { to: later });
    await poll('the scheduled route in sync', async () => {
      const r = await server.request('GET', `/v1/routes/${scheduled.id}`);
      return r.body.sync.state === 'in_sync' ? r : undefined;
    });

    expect((await server.request('GET', '/v1/hosts/h1', { token: 'viewer' })).status).toBe(200);
    expect((await server.request('GET', '/v1/hosts/nosuch', { token: 'viewer' })).status).toBe(404);
    expect((await server.request('GET', '/v1/hosts/h1', { token: null })).status).toBe(401);
    expect((await server.request('GET', '/v1/no/such/path/h1')).status).toBe(404);
    expect(
      (
        await server.request('POST', '/v1/routes', {
          rawBody: '{',
          headers: { 'content-type': 'application/json' },
        })
      ).status,
    ).toBe(400);
    // The API's own port serves no metrics.
    expect((await server.request('GET', '/metrics')).status).toBe(404);

    const { text, samples } = await scrape(server.metricsUrl!);
    const names = new Set(samples.map((s) => s.name));
    for (const name of [
      'routeplane_run_duration_seconds_count',
      'routeplane_run_queue_wait_seconds_count',
      'routeplane_write_to_kernel_seconds_count',
      'routeplane_schedule_lag_seconds_count',
      'routeplane_hosts',
      'routeplane_reconcile_retries_total',
      'routeplane_warm_runner_restarts_total',
      'routeplane_http_request_duration_seconds_count',
      'process_cpu_user_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(names, name).toContain(name);
    }

    // Two writes (the create, the scheduled activation), each carried by a successful run.
    const applies = value(samples, 'routeplane_run_duration_seconds_count', {
      kind: 'apply',
      outcome: 'succeeded',
    });
    expect(applies).toBeGreaterThanOrEqual(2);
    expect(value(samples, 'routeplane_run_queue_wait_seconds_count', { kind: 'apply' })).toBe(
      applies,
    );
    expect(value(samples, 'routeplane_write_to_kernel_seconds_count')).toBe(2);
    expect(value(samples, 'routeplane_schedule_lag_seconds_count', { kind: 'routes' })).toBe(1);
    expect(value(samples, 'routeplane_reconcile_retries_total')).toBe(0);
    expect(value(samples, 'routeplane_warm_runner_restarts_total')).toBe(0);
    expect(value(samples, 'routeplane_hosts', { sync_state: 'in_sync' })).toBe(1);
    for (const state of ['applying', 'failed', 'conflict', 'drifted']) {
      expect(value(samples, 'routeplane_hosts', { sync_state: state }), state).toBe(0);
    }

    const http = (operation: string, status: string) =>
      value(samples, 'routeplane_http_request_duration_seconds_count', { operation, status });
    expect(http('createRoutes', '201')).toBe(2);
    expect(http('getHost', '200')).toBe(1);
    expect(http('getHost', '404')).toBe(1);
    expect(http('getHost', '401')).toBe(1);
    // Refused before validation, still named by its operation.
    expect(http('createRoutes', '400')).toBe(1);
    expect(http('unknown', '404')).toBe(2);

    // Closed label sets only: no host, path, token or id in any label.
    const operations = new Set(
      samples
        .filter((s) => s.name.startsWith('routeplane_http_request_duration_seconds'))
        .map((s) => s.labels.operation),
    );
    for (const op of operations) expect(op).toMatch(/^(unknown|[a-z][A-Za-z]+)$/);
    for (const s of samples) {
      expect(Object.keys(s.labels)).not.toContain('host');
      for (const v of Object.values(s.labels)) {
        expect(v).not.toMatch(/h1|h2|nosuch|203\.0\.113|[0-9a-f]{8}-[0-9a-f]{4}/);
      }
    }
    for (const secret of Object.values(TOKENS)) expect(text).not.toContain(secret);
  });

  it('when an apply fails, then the retry is counted and the host is counted as failed', async () => {
    const res = await server.request('POST', '/v1/routes', {
      body: { host: 'h2', to: '203.0.113.48/28', dev: 'nosuch0' },
    });
    expect(res.status, res.text).toBe(502);
    const { samples } = await scrape(server.metricsUrl!);
    expect(value(samples, 'routeplane_reconcile_retries_total')).toBeGreaterThanOrEqual(1);
    expect(value(samples, 'routeplane_hosts', { sync_state: 'failed' })).toBe(1);
    expect(value(samples, 'routeplane_hosts', { sync_state: 'in_sync' })).toBe(1);
    // A failed apply carries no write to the kernel.
    expect(value(samples, 'routeplane_write_to_kernel_seconds_count')).toBe(2);
  });

  it('when the metrics listener is asked for anything but GET /metrics, then it refuses', async () => {
    const base = server.metricsUrl!.replace(/\/metrics$/, '');
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/v1/hosts`)).status).toBe(404);
    expect((await fetch(server.metricsUrl!, { method: 'POST' })).status).toBe(405);
  });
});

describe('/metrics without METRICS_PORT', { timeout: T }, () => {
  it('when METRICS_PORT is unset, then no metrics listener is started', async () => {
    const server = await startTestServer();
    try {
      expect(server.metricsUrl).toBeNull();
      expect(server.logs.some((l) => l.includes('"event":"metrics.listening"'))).toBe(false);
      expect((await server.request('GET', '/metrics')).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
