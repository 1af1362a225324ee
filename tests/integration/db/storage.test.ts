import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { migrateToLatest, openDatabase, type Database } from '../../../src/db/database.ts';
import { migrationSource } from '../../../src/db/migrations/index.ts';
import { HostStateStore } from '../../../src/hosts/host-state-store.ts';
import type { HostState } from '../../../src/hosts/host-state.ts';
import { RunsStore, type NewRun } from '../../../src/runs/runs-store.ts';
import type { RunOutcome } from '../../../src/runs/types.ts';
import { ADMIN_URL, createTestDatabase, urlFor, type TestDatabase } from '../../helpers/db.ts';

const template = inject('templateDatabase');

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

interface BackendUnderTest {
  name: 'postgres' | 'pglite';
  /** A database with no tables at all. */
  empty(): Promise<TestDatabase>;
  /** A database at the latest migration (Postgres: a clone of the template). */
  migrated(): Promise<TestDatabase>;
}

const backends: BackendUnderTest[] = [
  {
    name: 'postgres',
    empty: async () => {
      const name = `rp_empty_${process.pid}_${randomUUID().slice(0, 8)}`;
      await admin(`create database ${name}`);
      const db = openDatabase({ databaseUrl: urlFor(name), dataDir: 'memory://', poolMax: 2 });
      return {
        db,
        url: urlFor(name),
        drop: async () => {
          await db.close().catch(() => undefined);
          await admin(`drop database if exists ${name} with (force)`);
        },
      };
    },
    migrated: () => createTestDatabase(template, 'postgres'),
  },
  {
    name: 'pglite',
    empty: async () => {
      const db = openDatabase({ databaseUrl: undefined, dataDir: 'memory://' });
      return { db, url: undefined, drop: () => db.close().catch(() => undefined) };
    },
    migrated: () => createTestDatabase(null, 'pglite'),
  },
];

const ALL_MIGRATIONS = await migrationSource.getMigrations([]);
const names = (list: unknown[]) =>
  list.map((m) => (typeof m === 'string' ? m : (m as { name: string }).name));
const migrationRows = (db: Database) =>
  db.knex('knex_migrations').select('name', 'batch').orderBy('id');

const newRun = (overrides: Partial<NewRun> = {}): NewRun => ({
  id: randomUUID(),
  kind: 'playbook',
  playbook: 'ping',
  hosts: ['h1', 'h2'],
  limit: ['lab'],
  requestedBy: 'alice',
  owner: 'test-owner',
  ...overrides,
});

describe.each(backends)('storage on $name', (backend) => {
  describe.skipIf(backend.name === 'postgres' && template === null)(
    'migrations, given one database taken through its history',
    () => {
      let t: TestDatabase;
      let db: Database;
      let run: Awaited<ReturnType<RunsStore['insert']>>;
      beforeAll(async () => {
        t = await backend.empty();
        db = t.db;
      });
      afterAll(async () => {
        await t?.drop();
      });
      const completed = async () => names(((await db.knex.migrate.list()) as unknown[][])[0]!);

      it('when an empty database is migrated one step, then only the first migration is applied', async () => {
        await db.knex.migrate.up();
        expect(await completed()).toEqual(ALL_MIGRATIONS.slice(0, 1));
        expect(await db.knex.schema.hasTable('runs')).toBe(true);
        expect(await db.knex.schema.hasTable('host_snapshots')).toBe(false);
      });

      it('when that database holds a run and is migrated to latest, then it rolls forward and keeps the run', async () => {
        run = await new RunsStore(db.knex).insert(newRun());
        await migrateToLatest(db);
        expect(await completed()).toEqual(ALL_MIGRATIONS);
        expect(await db.knex.schema.hasTable('host_snapshots')).toBe(true);
        expect(await new RunsStore(db.knex).get(run.id)).toEqual(run);
        expect((await migrationRows(db)).map((r) => r.batch)).toEqual([
          1,
          ...ALL_MIGRATIONS.slice(1).map(() => 2),
        ]);
      });

      it('when it is migrated again at the latest, then nothing is applied again', async () => {
        const before = await migrationRows(db);
        await migrateToLatest(db);
        expect(await migrationRows(db)).toEqual(before);
      });

      it('when every migration is rolled back, then none of the tables remains', async () => {
        await db.knex.migrate.rollback(undefined, true);
        expect(await completed()).toEqual([]);
        expect(await db.knex.schema.hasTable('runs')).toBe(false);
        expect(await db.knex.schema.hasTable('host_snapshots')).toBe(false);
      });

      it('when the empty database is migrated to latest, then every migration is applied once, in order, as one batch', async () => {
        await migrateToLatest(db);
        const [, pending] = (await db.knex.migrate.list()) as [unknown[], unknown[]];
        expect(await completed()).toEqual(ALL_MIGRATIONS);
        expect(pending).toEqual([]);
        expect((await migrationRows(db)).map((r) => r.batch)).toEqual(ALL_MIGRATIONS.map(() => 1));
        expect(await db.knex.schema.hasTable('runs')).toBe(true);
        expect(await db.knex.schema.hasTable('host_snapshots')).toBe(true);
      });
    },
  );

  describe.skipIf(backend.name === 'postgres' && template === null)('stores', () => {
    let t: TestDatabase;
    let runs: RunsStore;
    let hosts: HostStateStore;
    beforeAll(async () => {
      t = await backend.migrated();
      expect(t.db.backend).toBe(backend.name);
      runs = new RunsStore(t.db.knex);
      hosts = new HostStateStore(t.db.knex);
    });
    afterAll(async () => {
      await t?.drop();
    });

    it('when a run is inserted, then it reads back queued with its hosts, limit and actor', async () => {
      const spec = newRun();
      const inserted = await runs.insert(spec);
      expect(inserted).toMatchObject({
        id: spec.id,
        kind: 'playbook',
        playbook: 'ping',
        hosts: ['h1', 'h2'],
        limit: ['lab'],
        status: 'queued',
        requestedBy: 'alice',
        owner: 'test-owner',
        rc: null,
        startedAt: null,
        finishedAt: null,
        summary: {},
        results: [],
        error: null,
        log: '',
      });
      expect(inserted.createdAt).toBeInstanceOf(Date);
      expect(await runs.get(spec.id)).toEqual(inserted);
    });

    it('when a run goes through running to finished, then its outcome round-trips exactly', async () => {
      const { id } = await runs.insert(newRun());
      await runs.markRunning(id);
      expect((await runs.get(id))?.startedAt).toBeInstanceOf(Date);
      const outcome: RunOutcome = {
        status: 'failed',
        rc: 2,
        summary: {
          h1: {
            status: 'changed',
            ok: 2,
            changed: 1,
            failures: 0,
            unreachable: 0,
            skipped: 0,
            msg: null,
          },
          h2: {
            status: 'failed',
            ok: 0,
            changed: 0,
            failures: 1,
            unreachable: 0,
            skipped: 0,
            msg: 'boom ✗',
          },
        },
        results: [
          {
            host: 'h1',
            task: 'routes',
            module: 'routeplane_routes',
            status: 'changed',
            changed: true,
            msg: null,
            data: {
              added: ['203.0.113.0/24'],
              nested: { n: 1, ok: true, none: null },
              text: 'äöü 😀',
            },
          },
        ],
        error: null,
        log: 'line 1\nline 2 \u00e9\n',
      };
      const finished = await runs.finish(id, outcome);
      expect(finished).toMatchObject({ ...outcome, id, status: 'failed' });
      expect(finished?.finishedAt).toBeInstanceOf(Date);
      expect(await runs.get(id)).toEqual(finished);
    });

    it('when a finished run is finished again, then the first outcome stands', async () => {
      const { id } = await runs.insert(newRun());
      const ok: RunOutcome = {
        status: 'succeeded',
        rc: 0,
        summary: {},
        results: [],
        error: null,
        log: '',
      };
      await runs.finish(id, ok);
      expect(await runs.finish(id, { ...ok, status: 'error', error: 'late' })).toBeNull();
      expect(await runs.get(id)).toMatchObject({ status: 'succeeded', error: null });
    });

    it('when runs are listed by host, then only runs targeting it come back, newest first, without results or log', async () => {
      const host = `list-${randomUUID().slice(0, 8)}`;
      const first = await runs.insert(newRun({ hosts: [host, 'h1'] }));
      await runs.insert(newRun({ hosts: ['h9'] }));
      const second = await runs.insert(
        newRun({ hosts: [host], kind: 'gather', playbook: 'gather_state' }),
      );
      await runs.finish(second.id, {
        status: 'succeeded',
        rc: 0,
        summary: {},
        results: [
          { host, task: 't', module: null, status: 'ok', changed: false, msg: null, data: {} },
        ],
        error: null,
        log: 'secret-ish log',
      });
      const page = await runs.list({ host, limit: 10, offset: 0 });
      expect(page.total).toBe(2);
      expect(page.items.map((r) => r.id)).toEqual([second.id, first.id]);
      expect(page.items[0]).toMatchObject({ results: [], log: '' });
      const gathers = await runs.list({
        host,
        kind: 'gather',
        status: 'succeeded',
        limit: 10,
        offset: 0,
      });
      expect(gathers.items.map((r) => r.id)).toEqual([second.id]);
    });

    it('when the owner of unfinished runs is gone, then they are marked interrupted', async () => {
      const owner = `dead-${randomUUID()}`;
      const a = await runs.insert(newRun({ owner }));
      const b = await runs.insert(newRun({ owner }));
      await runs.markRunning(b.id);
      expect(await runs.ownersOfUnfinished('someone-else')).toContain(owner);
      const interrupted = await runs.markInterrupted([owner]);
      expect(interrupted.map((r) => r.id).sort()).toEqual([a.id, b.id].sort());
      expect(await runs.get(a.id)).toMatchObject({
        status: 'interrupted',
        error: expect.any(String),
      });
      expect(await runs.ownersOfUnfinished('someone-else')).not.toContain(owner);
    });

    const state = (at: Date, extraRoute?: string): HostState => ({
      collectedAt: at,
      runId: randomUUID(),
      links: [
        {
          ifname: 'lo',
          lladdr: '00:00:00:00:00:00',
          mtu: 65536,
          state: 'UNKNOWN',
          flags: ['LOOPBACK', 'UP'],
        },
        { ifname: 'eth0', lladdr: '62:1f:0a:3c:44:01', mtu: 1500, state: 'UP', flags: ['UP'] },
      ],
      addresses: [
        {
          ifname: 'eth0',
          family: 'inet',
          address: '198.51.100.18',
          prefixlen: 28,
          scope: 'global',
        },
        {
          ifname: 'eth0',
          family: 'inet6',
          address: '2001:db8:100::2',
          prefixlen: 64,
          scope: 'global',
        },
      ],
      routes: [
        {
          family: 'inet',
          dst: extraRoute ?? '198.51.100.16/28',
          gateway: null,
          dev: 'eth0',
          protocol: 'kernel',
          metric: null,
          table: 'main',
          scope: 'link',
          prefsrc: '198.51.100.18',
          type: 'unicast',
          flags: [],
        },
      ],
    });

    it('when a host state is saved, then it reads back equal, reachable, seen at its collection time', async () => {
      const at = new Date('2026-01-02T03:04:05.678Z');
      const s = state(at);
      await hosts.saveState('h1', s);
      expect(await hosts.get('h1')).toEqual({
        host: 'h1',
        state: s,
        reachable: true,
        lastSeenAt: at,
        lastError: null,
      });
      const [row] = await t.db.knex('host_snapshots').where({ host: 'h1' });
      expect(row.state).toEqual({ links: s.links, addresses: s.addresses, routes: s.routes });
      expect(row.run_id).toBe(s.runId);
    });

    it('when a saved host turns unreachable, then its last state and last-seen time are kept with the error', async () => {
      const at = new Date('2026-01-02T03:04:05.678Z');
      const s = state(at);
      await hosts.saveState('h2', s);
      await hosts.recordReachability(
        'h2',
        false,
        'ssh: connection refused',
        new Date(at.getTime() + 60_000),
      );
      expect(await hosts.get('h2')).toEqual({
        host: 'h2',
        state: s,
        reachable: false,
        lastSeenAt: at,
        lastError: 'ssh: connection refused',
      });
    });

    it('when a host is saved again, then the new state replaces the old and clears the error', async () => {
      const first = new Date('2026-01-02T03:04:05.678Z');
      await hosts.saveState('h3', state(first));
      await hosts.recordReachability('h3', false, 'down', new Date(first.getTime() + 1000));
      const later = new Date(first.getTime() + 5000);
      const s = state(later, '203.0.113.0/24');
      await hosts.saveState('h3', s);
      expect(await hosts.get('h3')).toEqual({
        host: 'h3',
        state: s,
        reachable: true,
        lastSeenAt: later,
        lastError: null,
      });
    });

    it('when only reachability is known for a host, then it has a record without state', async () => {
      await hosts.recordReachability('h4', false, 'no route to host', new Date());
      expect(await hosts.get('h4')).toEqual({
        host: 'h4',
        state: null,
        reachable: false,
        lastSeenAt: null,
        lastError: 'no route to host',
      });
      expect(await hosts.get('never-seen')).toBeNull();
    });

    it('when all host records are read, then each comes with reachability but without its state', async () => {
      const all = await hosts.all();
      expect([...all.keys()]).toEqual(expect.arrayContaining(['h1', 'h2', 'h3', 'h4']));
      expect(all.get('h2')).toMatchObject({
        reachable: false,
        lastError: 'ssh: connection refused',
        state: null,
      });
      expect(all.get('h1')).toMatchObject({ reachable: true, state: null });
    });
  });
});
