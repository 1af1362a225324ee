import { describe, expect, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import { kernelRoutes, ROUTE_PROTO } from '../../helpers/routes.ts';
import { runWhen, spawnedRun, expectNothingLeft, sleep } from '../../helpers/runs.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

// Both runner modes on one lab host, one after the other: RUNNER=warm is the default the rest
// of the suite runs in; this file is where RUNNER=spawn runs the apply, gather, catalog,
// cancel and timeout paths, and where the two are compared result by result.
const T = 120_000;
const ROUTES = ['192.0.2.0/26', '198.51.100.0/27', '203.0.113.128/25'].map((to, i) => ({
  host: 'h1',
  to,
  dev: 'eth0',
  metric: 100 + i,
}));

interface Observed {
  apply: unknown;
  gather: unknown;
  catalog: unknown;
  kernel: unknown;
}

/**
 * A run's per-host outcome and results, without what differs by nature: ids, times and logs
 * are left out, and each route's id (each server has its own database) becomes its position.
 */
function comparable(
  run: { summary: unknown; results: unknown[]; status: string; rc: number },
  routeIds: string[] = [],
) {
  let text = JSON.stringify({
    status: run.status,
    rc: run.rc,
    summary: run.summary,
    results: run.results,
  });
  routeIds.forEach((id, i) => (text = text.replaceAll(id, `route-${i}`)));
  return JSON.parse(text) as unknown;
}

async function latestRun(server: TestServer, kind: string) {
  const listed = await server.request('GET', `/v1/runs?kind=${kind}&limit=1`);
  expect(listed.status, listed.text).toBe(200);
  const id = listed.body.items[0].id as string;
  return (await runWhen(server, id, (r) => r.status !== 'running' && r.status !== 'queued')) as {
    summary: unknown;
    results: unknown[];
    status: string;
    rc: number;
  };
}

describe('runner modes', { timeout: T }, () => {
  const fleet = useLab(1);

  async function exercise(mode: 'warm' | 'spawn'): Promise<Observed> {
    const server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath, RUNNER: mode });
    try {
      const created = await server.request('POST', '/v1/routes?wait=60', { body: ROUTES });
      expect(created.status, created.text).toBe(201);
      const ids = (created.body.items as { route: { id: string } }[]).map((i) => i.route.id);
      const apply = comparable(await latestRun(server, 'apply'), ids);
      const refreshed = await server.request('GET', '/v1/hosts/h1?refresh=true');
      expect(refreshed.status, refreshed.text).toBe(200);
      const gather = comparable(await latestRun(server, 'gather'));
      const ran = await server.request('POST', '/v1/runs?wait=60', {
        body: {
          playbook: 'echo',
          limit: ['h1'],
          extravars: { text: `{{ mode }}`, items_list: [1, 'two'], options: { a: 1 }, count: 41 },
        },
      });
      expect(ran.status, ran.text).toBe(201);
      const catalog = comparable(ran.body);
      const kernel = (await kernelRoutes(fleet.lab, 'h1')).filter(
        (r) => r.protocol === ROUTE_PROTO,
      );
      return { apply, gather, catalog, kernel };
    } finally {
      await server.close();
      await nsExec(fleet.lab, 'h1', ['ip', 'route', 'flush', 'proto', ROUTE_PROTO]);
    }
  }

  it('when the same changes are applied in both modes, then every run has the same per-host results, field by field', async () => {
    const spawn = await exercise('spawn');
    const warm = await exercise('warm');
    expect(spawn.apply).toMatchObject({ status: 'succeeded' });
    expect(spawn.kernel).toHaveLength(ROUTES.length);
    // The gather reads the host's live state, which the apply before it just made the same.
    expect(warm.apply).toEqual(spawn.apply);
    expect(warm.gather).toEqual(spawn.gather);
    expect(warm.catalog).toEqual(spawn.catalog);
    expect(warm.kernel).toEqual(spawn.kernel);
  });

  describe('with RUNNER=spawn', () => {
    it('when a run is canceled, then it is canceled and leaves nothing behind', async () => {
      const server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath, RUNNER: 'spawn' });
      try {
        const res = await server.request('POST', '/v1/runs', {
          body: { playbook: 'pause', limit: ['h1'] },
        });
        expect(res.status, res.text).toBe(202);
        const spawned = await spawnedRun(server, res.body.id);
        const cmdline = await import('node:fs/promises').then((fs) =>
          fs.readFile(`/proc/${spawned.pgid}/cmdline`, 'utf8'),
        );
        expect(cmdline).toContain('ansible-playbook');
        expect(cmdline).not.toContain('warm_ansible.py');
        await sleep(1500);
        const canceled = await server.request('POST', `/v1/runs/${res.body.id}/cancel`);
        expect(canceled.status, canceled.text).toBe(200);
        const run = await runWhen(server, res.body.id, (r) => r.status === 'canceled');
        expect(run.status).toBe('canceled');
        expect(await expectNothingLeft(spawned)).toEqual({
          group: [],
          mentioning: [],
          workspaceExists: false,
        });
      } finally {
        await server.close();
      }
    });

    it('when a run outlives RUN_TIMEOUT_S, then it is timed_out', async () => {
      const server = await startTestServer({
        INVENTORY: fleet.lab.inventoryPath,
        RUNNER: 'spawn',
        RUN_TIMEOUT_S: '3',
      });
      try {
        const res = await server.request('POST', '/v1/runs?wait=60', {
          body: { playbook: 'pause', limit: ['h1'] },
        });
        expect(res.body).toMatchObject({ status: 'timed_out', error: 'run exceeded 3s' });
      } finally {
        await server.close();
      }
    });
  });
});
