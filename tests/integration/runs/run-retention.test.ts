import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../../src/config.ts';
import { createLogger } from '../../../src/logger.ts';
import { RunRetention } from '../../../src/runs/run-retention.ts';
import { RunsStore } from '../../../src/runs/runs-store.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';
import { CountingRunner, eventually } from '../../helpers/runs.ts';
import { startTestServer } from '../../helpers/server.ts';

const DAY = 24 * 60 * 60 * 1000;
const daysAgo = (n: number) => new Date(Date.now() - n * DAY);

function runRow(overrides: Record<string, unknown>) {
  return {
    id: randomUUID(),
    kind: 'playbook',
    playbook: 'ping',
    hosts: JSON.stringify(['h1']),
    limit_spec: JSON.stringify(['h1']),
    status: 'succeeded',
    requested_by: 'admin',
    owner: 'gone-host:999999:deadbeef',
    ...overrides,
  };
}

const ended = (status: string, days: number) =>
  runRow({
    status,
    created_at: daysAgo(days),
    started_at: daysAgo(days),
    finished_at: daysAgo(days),
  });

describe('RUN_RETENTION_DAYS', () => {
  describe('given runs finished 40 and 1 days ago, and one still running since 40 days, when a server starts with a 30-day retention', () => {
    const old = ['succeeded', 'failed', 'error', 'canceled', 'timed_out', 'interrupted'].map((s) =>
      ended(s, 40),
    );
    const recent = ended('succeeded', 1);
    const stuck = runRow({ status: 'running', created_at: daysAgo(40), started_at: daysAgo(40) });
    const queued = runRow({ status: 'queued', created_at: daysAgo(40) });
    let database: TestDatabase;
    let server: Awaited<ReturnType<typeof startTestServer>>;
    let runningOwner: string;

    beforeAll(async () => {
      database = await createTestDatabase(inject('templateDatabase'));
      await database.db.knex('runs').insert([...old, recent]);
      server = await startTestServer(
        { RUN_RETENTION_DAYS: '30' },
        { runner: new CountingRunner(), database },
      );
      // A live instance's unfinished runs, however old, are never pruned: add them as this
      // server's own and prune again.
      runningOwner = server.services.presence.id;
      await database.db.knex('runs').insert([
        { ...stuck, owner: runningOwner },
        { ...queued, owner: runningOwner },
      ]);
      await new RunRetention(
        30,
        new RunsStore(database.db.knex),
        createLogger('silent'),
      ).pruneNow();
    });
    afterAll(async () => {
      await server?.close();
      await database?.drop();
    });

    it('then every run that ended before the retention is gone (404), whatever its status', async () => {
      const left = await database.db
        .knex('runs')
        .whereIn(
          'id',
          old.map((r) => r.id),
        )
        .count({ n: '*' });
      expect(Number(left[0]!.n)).toBe(0);
      const res = await server.request('GET', `/v1/runs/${old[0]!.id}`, { token: 'viewer' });
      expect(res.status).toBe(404);
    });

    it('then a run that ended within the retention is kept', async () => {
      const res = await server.request('GET', `/v1/runs/${recent.id}`, { token: 'viewer' });
      expect(res.status).toBe(200);
      expect(res.body.status).toBe('succeeded');
    });

    it('then runs still running or queued are kept, however old', async () => {
      const rows = await database.db
        .knex('runs')
        .whereIn('id', [stuck.id, queued.id])
        .select('status');
      expect(rows.map((r: { status: string }) => r.status).sort()).toEqual(['queued', 'running']);
    });

    it('then the prune is logged with its count', () => {
      const pruned = server.logs
        .map((l) => JSON.parse(l) as { event?: string; count?: number })
        .filter((e) => e.event === 'runs.pruned');
      expect(pruned.map((e) => e.count)).toEqual([old.length]);
    });

    it('then no table references runs by foreign key (routes keep last_run_id as a plain uuid)', async () => {
      const { rows } = (await database.db.knex.raw(
        `select tc.table_name, tc.constraint_name
           from information_schema.table_constraints tc
           join information_schema.constraint_column_usage ccu
             on ccu.constraint_name = tc.constraint_name
          where tc.constraint_type = 'FOREIGN KEY' and ccu.table_name = 'runs'`,
      )) as { rows: unknown[] };
      expect(rows).toEqual([]);
    });
  });

  it('when the embedded PGlite holds more old runs than one batch, then the prune ends with all of them gone', async () => {
    // knex-pglite answers delete() with a result object, not a count: the loop must not spin.
    const database = await createTestDatabase(null, 'pglite');
    try {
      const rows = Array.from({ length: 5 }, () => ended('failed', 40));
      await database.db.knex('runs').insert([...rows, ended('failed', 1)]);
      const n = await new RunsStore(database.db.knex).pruneFinishedBefore(daysAgo(30), 2);
      expect(n).toBe(5);
      const left = await database.db.knex('runs').count({ n: '*' });
      expect(Number(left[0]!.n)).toBe(1);
    } finally {
      await database.drop();
    }
  });

  it('when retention is 0, then nothing is pruned', async () => {
    const database = await createTestDatabase(inject('templateDatabase'));
    try {
      const ancient = ended('succeeded', 4000);
      await database.db.knex('runs').insert(ancient);
      const retention = new RunRetention(
        0,
        new RunsStore(database.db.knex),
        createLogger('silent'),
      );
      await retention.start();
      expect(await retention.pruneNow()).toBe(0);
      await retention.stop();
      expect(await database.db.knex('runs').where({ id: ancient.id }).first()).toBeTruthy();
    } finally {
      await database.drop();
    }
  });

  it('when the periodic prune is enabled with a short period, then a run that ages past the retention later is pruned without a restart', async () => {
    const database = await createTestDatabase(inject('templateDatabase'));
    const retention = new RunRetention(
      30,
      new RunsStore(database.db.knex),
      createLogger('silent'),
      50,
    );
    try {
      await retention.start();
      const later = ended('failed', 31);
      await database.db.knex('runs').insert(later);
      await eventually('the periodic prune', async () =>
        (await database.db.knex('runs').where({ id: later.id }).first()) ? undefined : true,
      );
    } finally {
      await retention.stop();
      await database.drop();
    }
  });

  it('when the setting is outside 0..3650 days, then the configuration is refused; unset, it is 30', () => {
    const base = { API_TOKENS: 'admin:admin:admin-token-0123456789' };
    expect(loadConfig(base).runRetentionDays).toBe(30);
    expect(loadConfig({ ...base, RUN_RETENTION_DAYS: '0' }).runRetentionDays).toBe(0);
    expect(() => loadConfig({ ...base, RUN_RETENTION_DAYS: '-1' })).toThrow(/RUN_RETENTION_DAYS/);
    expect(() => loadConfig({ ...base, RUN_RETENTION_DAYS: '3651' })).toThrow(/RUN_RETENTION_DAYS/);
  });
});
