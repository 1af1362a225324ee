import { describe, expect, it } from 'vitest';
import { Metrics } from '../../../src/metrics/metrics.ts';

const lines = (text: string, name: string) =>
  text.split('\n').filter((l) => l.startsWith(name) && !l.startsWith('#'));

describe('Metrics', () => {
  it('when two instances count, then each has its own registry and neither uses the global one', async () => {
    const a = new Metrics();
    const b = new Metrics();
    a.warmRunnerRestarts.inc();
    a.warmRunnerRestarts.inc();
    expect(lines(await a.exposition(), 'routeplane_warm_runner_restarts_total')).toEqual([
      'routeplane_warm_runner_restarts_total 2',
    ]);
    expect(lines(await b.exposition(), 'routeplane_warm_runner_restarts_total')).toEqual([
      'routeplane_warm_runner_restarts_total 0',
    ]);
    const { register } = await import('prom-client');
    expect(await register.getSingleMetric('routeplane_warm_runner_restarts_total')).toBeUndefined();
  });

  it('when runs, transitions and requests are reported, then they are counted under their closed labels', async () => {
    const m = new Metrics();
    m.runStarted('apply', 0.02);
    m.runEnded('apply', 'succeeded', 1.2);
    m.runEnded('gather', 'failed', 0.8);
    m.transitionsFired('routes', [new Date(1_000), null, new Date(1_500)], 2_000);
    m.httpRequest('getHost', 200, 0.003);
    m.httpRequest(null, 404, 0.001);
    m.hostsSettled([
      { host: 'h1', gen: 1, failed: true, converging: false },
      { host: 'h2', gen: 1, failed: false, converging: false },
    ]);
    const text = await m.exposition();
    expect(text).toContain(
      'routeplane_run_duration_seconds_count{kind="apply",outcome="succeeded"} 1',
    );
    expect(text).toContain(
      'routeplane_run_duration_seconds_count{kind="gather",outcome="failed"} 1',
    );
    expect(text).toContain('routeplane_run_queue_wait_seconds_count{kind="apply"} 1');
    expect(text).toContain('routeplane_schedule_lag_seconds_count{kind="routes"} 2');
    expect(text).toContain('routeplane_schedule_lag_seconds_sum{kind="routes"} 1.5');
    expect(text).toContain(
      'routeplane_http_request_duration_seconds_count{operation="getHost",status="200"} 1',
    );
    expect(text).toContain(
      'routeplane_http_request_duration_seconds_count{operation="unknown",status="404"} 1',
    );
    expect(text).toContain('routeplane_reconcile_retries_total 1');
    expect(text).not.toMatch(/h1|h2/);
    // Off unless a listener will serve them.
    expect(text).not.toContain('process_cpu_user_seconds_total');
  });

  it('when hosts by sync state are read, then every state is exported, zero included', async () => {
    const m = new Metrics({ hostsBySyncState: async () => new Map([['failed', 2]]) });
    const text = await m.exposition();
    expect(lines(text, 'routeplane_hosts{')).toEqual([
      'routeplane_hosts{sync_state="in_sync"} 0',
      'routeplane_hosts{sync_state="applying"} 0',
      'routeplane_hosts{sync_state="failed"} 2',
      'routeplane_hosts{sync_state="conflict"} 0',
      'routeplane_hosts{sync_state="drifted"} 0',
    ]);
  });

  it('when hosts by sync state cannot be read, then the scrape still answers, without that gauge', async () => {
    const warnings: unknown[] = [];
    const logger = { warn: (o: unknown) => warnings.push(o) } as never;
    const m = new Metrics({
      hostsBySyncState: () => Promise.reject(new Error('database down')),
      logger,
    });
    const text = await m.exposition();
    expect(lines(text, 'routeplane_hosts{')).toEqual([]);
    expect(text).toContain('routeplane_run_duration_seconds');
    expect(warnings).toHaveLength(1);
  });
});
