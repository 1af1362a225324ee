import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase } from '../../../src/db/database.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';
import { CountingRunner } from '../../helpers/runs.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

// A dead instance's id: same shape as InstancePresence.id, but no process holds its lock.
const DEAD_OWNER = 'gone-host:999999:deadbeef';

function runRow(overrides: Record<string, unknown>) {
  return {
    id: randomUUID(),
    kind: 'playbook',
    playbook: 'ping',
    hosts: JSON.stringify(['h1']),
    limit_spec: JSON.stringify(['h1']),
    status: 'running',
    requested_by: 'admin',
    owner: DEAD_OWNER,
    started_at: new Date(),
    ...overrides,
  };
}

/** A second connection pool on the same database, as another replica would have. */
function sameDatabase(of: TestDatabase): TestDatabase {
  const db = openDatabase({ databaseUrl: of.url, dataDir: 'memory://' });
  return { db, url: of.url, drop: () => db.close().catch(() => undefined) };
}

describe('runs left unfinished by a routeplane process', () => {
  const servers: TestServer[] = [];
  const databases: TestDatabase[] = [];

  afterEach(async () => {
    for (const s of servers.splice(0).reverse()) await s.close();
    for (const d of databases.splice(0)) await d.drop();
  });

  async function start(database: TestDatabase): Promise<TestServer> {
    const server = await startTestServer({}, { runner: new CountingRunner(), database });
    servers.push(server);
    return server;
  }

  describe('given a dead instance left runs running, queued and ended, when a server starts', () => {
    const running = runRow({ status: 'running' });
    const queued = runRow({ status: 'queued', started_at: null });
    const ended = ['succeeded', 'failed', 'error', 'canceled', 'timed_out'].map((status) =>
      runRow({ status, rc: 0, finished_at: new Date() }),
    );
    let database: TestDatabase;
    let server: TestServer;
    const statusOf = async (id: string) =>
      (await server.request('GET', `/v1/runs/${id}`, { token: 'viewer' })).body;

    beforeAll(async () => {
      database = await createTestDatabase(inject('templateDatabase'));
      await database.db.knex('runs').insert([running, queued, ...ended]);
      server = await startTestServer({}, { runner: new CountingRunner(), database });
    });
    afterAll(async () => {
      await server?.close();
      await database?.drop();
    });

    it('then the running run is interrupted, with a reason and an end time', async () => {
      const run = await statusOf(running.id);
      expect(run).toMatchObject({
        status: 'interrupted',
        error: 'the routeplane process running it stopped before it ended',
      });
      expect(run.finished_at).not.toBeNull();
    });

    it('then the queued run is interrupted too', async () => {
      expect((await statusOf(queued.id)).status).toBe('interrupted');
    });

    it('then each interrupted run is logged as a warning', () => {
      const warned = server.logs
        .map((l) => JSON.parse(l) as { event?: string; run_id?: string; level?: number })
        .filter((e) => e.event === 'run.interrupted');
      expect(warned.map((e) => e.run_id).sort()).toEqual([running.id, queued.id].sort());
      expect(warned.every((e) => e.level === 40)).toBe(true);
    });

    it('then the runs that had ended keep their status', async () => {
      const statuses = await Promise.all(ended.map(async (r) => (await statusOf(r.id)).status));
      expect(statuses).toEqual(['succeeded', 'failed', 'error', 'canceled', 'timed_out']);
    });
  });

  it.skipIf(inject('templateDatabase') === null)(
    'when a second instance starts while the owner is alive, then the run stays running, and only a start after the owner died interrupts it',
    async () => {
      const database = await createTestDatabase(inject('templateDatabase'));
      databases.push(database);
      const first = await start(database);
      const live = runRow({ owner: first.services.presence.id });
      await database.db.knex('runs').insert(live);

      const second = await start(sameDatabase(database));
      const seen = await second.request('GET', `/v1/runs/${live.id}`, { token: 'viewer' });
      expect(seen.body.status).toBe('running');
      // nor can the second instance cancel what the first executes
      const cancel = await second.request('POST', `/v1/runs/${live.id}/cancel`, {
        token: 'operator',
      });
      expect(cancel.status).toBe(409);
      expect(cancel.body.detail).toMatch(/executed by another routeplane instance/);

      await first.close();
      servers.splice(servers.indexOf(first), 1);
      const third = await start(sameDatabase(database));
      const after = await third.request('GET', `/v1/runs/${live.id}`, { token: 'viewer' });
      expect(after.body.status).toBe('interrupted');
    },
  );
});
