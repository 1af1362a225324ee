import { readlink, rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';
import { useLab } from '../../helpers/lab.ts';
import { FAST_RETRIES, findRoute, kernelHas, ownedRoutes, poll } from '../../helpers/routes.ts';
import { processesMentioning, sleep } from '../../helpers/runs.ts';
import { spawnServer, spawnedPid, type ServerProcess } from '../../helpers/server-process.ts';

// kill -9 of a server process, then a new one on the same database and data dir.
const T = 150_000;
const postgres = inject('templateDatabase') !== null;

async function killAll(pids: number[]) {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

describe.skipIf(!postgres)('a server killed with -9 and started again (Postgres)', () => {
  const fleet = useLab(1);
  let database: TestDatabase;
  const started: ServerProcess[] = [];

  beforeAll(async () => {
    database = await createTestDatabase(inject('templateDatabase'));
  }, T);

  afterAll(async () => {
    for (const s of started) await s.stop();
    started[0]?.cleanup();
    await database?.drop();
  }, T);

  const spawn = async () => {
    const s = await spawnServer({
      DATABASE_URL: database.url!,
      INVENTORY: fleet.lab.inventoryPath,
      // Restarts share the data dir, as a restarted service would (its pid file is stale).
      ...(started[0] ? { DATA_DIR: started[0].dataDir } : {}),
      ...FAST_RETRIES,
    });
    started.push(s);
    return s;
  };

  it(
    'when the server dies while a route is pending and a run is in flight, then after create_at a new one applies it once and recovers the run',
    { timeout: T },
    async () => {
      const knex = database.db.knex;
      const first = await spawn();
      const pending = { to: '203.0.113.112/28' };
      const createAt = new Date(Date.now() + 10_000);
      const p = await first.request('POST', '/v1/routes', {
        body: { host: 'h1', to: pending.to, dev: 'eth0', create_at: createAt.toISOString() },
      });
      expect(p.status, p.text).toBe(201);
      expect(p.body.status).toBe('pending');

      // A second route whose run we kill along with the server.
      const inflight = { to: '2001:db8:f0c0::/48', metric: 1024 };
      const q = await first.request('POST', '/v1/routes?wait=0', {
        body: { host: 'h1', to: inflight.to, dev: 'eth0' },
      });
      expect(q.status, q.text).toBe(202);
      const runId = q.body.sync.run_id as string;
      const pgid = await poll(
        'the run to spawn',
        async () => spawnedPid(first.logs, runId),
        30_000,
      );

      const workspace = await readlink(`/proc/${pgid}/cwd`);
      await first.kill();
      // A crash takes the run's processes with it (as a machine or container going down); the
      // dead server cannot clean its run's temp dir, so the test does.
      const mentioning = (await processesMentioning(workspace)).map((l) => Number.parseInt(l));
      await killAll([-pgid, ...mentioning]);
      await rm(workspace, { recursive: true, force: true });
      const [run] = await knex('runs').where({ id: runId });
      expect(run.status).toBe('running');

      // Nobody fires the transition while no server runs.
      await sleep(Math.max(0, createAt.getTime() - Date.now()) + 1_000);
      const [row] = await knex('routes').where({ id: p.body.id });
      expect(row.status).toBe('pending');
      expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), pending)).toBeUndefined();

      const second = await spawn();
      await kernelHas(fleet.lab, 'h1', pending);
      await kernelHas(fleet.lab, 'h1', inflight);
      await poll('both routes in sync', async () => {
        const rows = await knex('routes').where({ host: 'h1', sync_state: 'in_sync' });
        return rows.length === 2 ? rows : undefined;
      });

      // Once, not lost and not duplicated: one row per destination, one activation.
      expect(await knex('routes').where({ destination: pending.to })).toHaveLength(1);
      const events = await second.request('GET', `/v1/routes/${p.body.id}/events`);
      expect(events.body.items.map((e: { action: string; actor: string }) => e.action)).toEqual([
        'create',
        'activate',
      ]);
      const got = await second.request('GET', `/v1/routes/${p.body.id}`);
      expect(got.body).toMatchObject({ status: 'active', sync: { state: 'in_sync' } });

      // The run the dead process left running is ended as interrupted, once the dead
      // process's presence has lapsed (a live one that is only reconnecting keeps its runs).
      const after = await poll(
        'the dead run interrupted',
        async () => {
          const r = await second.request('GET', `/v1/runs/${runId}`, { token: 'viewer' });
          return r.body.status === 'interrupted' ? r : undefined;
        },
        30_000,
      );
      expect(after.body).toMatchObject({ kind: 'apply', status: 'interrupted' });
    },
  );
});
