import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../../src/db/database.ts';
import { migrationSource } from '../../../src/db/migrations/index.ts';
import { ADMIN_URL, testBackend, urlFor, type TestDatabase } from '../../helpers/db.ts';
import { useLab } from '../../helpers/lab.ts';
import { findRoute, kernelHas, ownedRoutes, routeRow } from '../../helpers/routes.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

// The kernel's integers, end to end: IPv6 metric 0 is 1024 (a stored route migrated from before
// that rule keeps applying without churn) and metric and table use the whole 32-bit range.
const T = 240_000;
const MIGRATION = '005_route_kernel_integers';

/** A database of this file's own, migrated up to (not including) MIGRATION. */
async function databaseBefore(migration: string): Promise<TestDatabase> {
  let db: Database;
  let drop: () => Promise<void>;
  if ((await testBackend()) === 'pglite') {
    db = openDatabase({ databaseUrl: undefined, dataDir: 'memory://' });
    drop = () => db.close().catch(() => undefined);
  } else {
    const name = `rp_migr_${process.pid}_${randomBytes(4).toString('hex')}`;
    const admin = async (sql: string) => {
      const c = new pg.Client({ connectionString: ADMIN_URL });
      await c.connect();
      try {
        await c.query(sql);
      } finally {
        await c.end();
      }
    };
    await admin(`create database ${name}`);
    db = openDatabase({ databaseUrl: urlFor(name), dataDir: 'memory://' });
    drop = async () => {
      await db.close().catch(() => undefined);
      await admin(`drop database if exists ${name} with (force)`);
    };
  }
  for (;;) {
    const [, pending] = (await db.knex.migrate.list({ migrationSource })) as [
      unknown[],
      { file?: string; name?: string }[] | string[],
    ];
    const next = pending.map((p) => (typeof p === 'string' ? p : (p.name ?? p.file)))[0];
    if (next === undefined) throw new Error(`${migration} is not a migration`);
    if (next === migration) break;
    await db.knex.migrate.up({ migrationSource });
  }
  return { db, url: undefined, drop };
}

describe('the kernel integers, on a lab of 2 hosts', { timeout: T }, () => {
  const fleet = useLab(2);
  let server: TestServer;
  let database: TestDatabase;
  const ids = {
    survivor: randomUUID(),
    // An active metric-0 route and a paused 1024 one to the same place: one identity after.
    activeZero: randomUUID(),
    pausedTop: randomUUID(),
    // Both active: the one already at 1024 stays.
    zero: randomUUID(),
    top: randomUUID(),
  };

  beforeAll(async () => {
    database = await databaseBefore(MIGRATION);
    const { knex } = database.db;
    const row = (id: string, to: string, metric: number, status: string, minutesAgo: number) => ({
      id,
      host: 'h1',
      destination: to,
      table_id: 254,
      metric,
      dev: 'eth0',
      status,
      sync_state: status === 'active' ? 'applying' : 'in_sync',
      created_by: 'operator',
      created_at: new Date(Date.now() - minutesAgo * 60_000),
    });
    await knex('routes').insert([
      row(ids.survivor, '2001:db8:f010::/48', 0, 'active', 10),
      row(ids.activeZero, '2001:db8:f011::/48', 0, 'active', 9),
      row(ids.pausedTop, '2001:db8:f011::/48', 1024, 'paused', 8),
      row(ids.zero, '2001:db8:f012::/48', 0, 'active', 7),
      row(ids.top, '2001:db8:f012::/48', 1024, 'active', 6),
    ]);
    // The server migrates the rest on start-up, then reconciles h1.
    server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath }, { database });
  }, T);

  afterAll(async () => {
    await server?.close();
    await database?.drop();
  }, T);

  it('when the migration has run, then metric and table are bigint and IPv6 metric 0 is 1024', async () => {
    const { knex } = server.database.db;
    const { rows } = await knex.raw(
      `select column_name, data_type from information_schema.columns
        where table_name = 'routes' and column_name in ('metric', 'table_id') order by 1`,
    );
    expect(rows).toEqual([
      { column_name: 'metric', data_type: 'bigint' },
      { column_name: 'table_id', data_type: 'bigint' },
    ]);
    expect(await routeRow(knex, ids.survivor)).toMatchObject({ metric: 1024, status: 'active' });
    const events = await knex('route_events').where({ route_id: ids.survivor });
    expect(events).toEqual([
      expect.objectContaining({
        actor: 'migration',
        action: 'migrate',
        from_status: 'active',
        to_status: 'active',
        detail: expect.objectContaining({ metric: { from: 0, to: 1024 } }),
      }),
    ]);
  });

  it('when metric 0 and 1024 collided, then the active one, else the one at 1024, stays live and the other is deleted with its reason', async () => {
    const { knex } = server.database.db;
    expect(await routeRow(knex, ids.activeZero)).toMatchObject({
      metric: 1024,
      status: 'active',
    });
    expect(await routeRow(knex, ids.pausedTop)).toMatchObject({
      status: 'deleted',
      removed_by: 'migration',
      removed_reason: 'deleted',
    });
    expect(await routeRow(knex, ids.top)).toMatchObject({ metric: 1024, status: 'active' });
    expect(await routeRow(knex, ids.zero)).toMatchObject({ metric: 1024, status: 'deleted' });
    for (const [loser, kept] of [
      [ids.pausedTop, ids.activeZero],
      [ids.zero, ids.top],
    ] as const) {
      const [event] = await knex('route_events').where({ route_id: loser, action: 'delete' });
      expect(event).toMatchObject({
        actor: 'migration',
        to_status: 'deleted',
        detail: { kept_route_id: kept, reason: expect.stringContaining('1024') },
      });
    }
    const listed = await server.request('GET', '/v1/routes?host=h1', { token: 'viewer' });
    expect(listed.body.items.map((r: { id: string }) => r.id).sort()).toEqual(
      [ids.survivor, ids.activeZero, ids.top].sort(),
    );
  });

  it('when the migrated route is applied and then ten more applies run, then the kernel keeps it at 1024 and the module reports it unchanged each time', async () => {
    const installed = await kernelHas(fleet.lab, 'h1', { to: '2001:db8:f010::/48' });
    expect(installed).toMatchObject({ metric: 1024, dev: 'eth0' });
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) {
      // Each create is an apply run of h1 carrying the whole desired set.
      const res = await server.request('POST', '/v1/routes?wait=60', {
        body: { host: 'h1', to: `203.0.113.${i * 8}/29`, dev: 'eth0' },
      });
      expect(res.status, res.text).toBe(201);
      expect(res.body.sync.state).toBe('in_sync');
      const runId = res.body.sync.run_id as string;
      const run = await server.request('GET', `/v1/runs/${runId}`, { token: 'viewer' });
      const apply = (
        run.body.results as { host: string; module: string; data: Record<string, unknown> }[]
      ).find((r) => r.host === 'h1' && r.module === 'routeplane_routes');
      expect(apply, run.text).toBeDefined();
      const refs = (key: string) =>
        (apply!.data[key] as { id: string | null }[]).map((r) => r.id).filter(Boolean);
      // Unchanged routes are counted, not listed: the survivor is in none of the lists.
      expect(apply!.data.unchanged_count, JSON.stringify(apply!.data)).toBeGreaterThanOrEqual(1);
      for (const key of ['added', 'replaced', 'removed', 'conflicts', 'errors']) {
        expect(refs(key), `${key} in run ${i}`).not.toContain(ids.survivor);
      }
      expect(apply!.data.removed).toEqual([]);
      seen.push(runId);
    }
    expect(new Set(seen).size).toBe(10);
    const owned = await ownedRoutes(fleet.lab, 'h1');
    expect(owned.filter((r) => r.to === '2001:db8:f010::/48')).toEqual([
      expect.objectContaining({ metric: 1024, table: 254 }),
    ]);
    expect((await server.request('GET', `/v1/routes/${ids.survivor}`)).body).toMatchObject({
      metric: 1024,
      sync: { state: 'in_sync' },
    });
  });

  it('when a new IPv6 route asks for metric 0, then it is stored, answered and applied as 1024', async () => {
    const res = await server.request('POST', '/v1/routes?wait=60', {
      body: { host: 'h1', to: '2001:db8:f013::/48', dev: 'eth0', metric: 0 },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ metric: 1024, sync: { state: 'in_sync' } });
    // The same route asked the old way is the same route.
    const again = await server.request('POST', '/v1/routes', {
      body: { host: 'h1', to: '2001:db8:f013::/48', dev: 'eth0', metric: 0 },
    });
    expect(again.status, again.text).toBe(200);
    expect(again.body.id).toBe(res.body.id);
    expect(await kernelHas(fleet.lab, 'h1', { to: '2001:db8:f013::/48' })).toMatchObject({
      metric: 1024,
    });
  });

  it('when metric 3000000000 and table 4294967295 are asked for, then they round-trip and reach the kernel', async () => {
    const body = {
      host: 'h1',
      to: '203.0.113.200/29',
      via: fleet.lab.hosts[1]!.ipv4,
      metric: 3000000000,
      table: 4294967295,
    };
    const res = await server.request('POST', '/v1/routes?wait=60', { body });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({
      metric: 3000000000,
      table: 4294967295,
      sync: { state: 'in_sync' },
    });
    const got = await server.request('GET', `/v1/routes/${res.body.id}`, { token: 'viewer' });
    expect(got.body).toMatchObject({ metric: 3000000000, table: 4294967295 });
    const listed = await server.request('GET', '/v1/routes?host=h1&limit=200', {
      token: 'viewer',
    });
    expect(listed.body.items).toContainEqual(
      expect.objectContaining({ id: res.body.id, metric: 3000000000, table: 4294967295 }),
    );
    const kernel = await ownedRoutes(fleet.lab, 'h1');
    expect(
      findRoute(kernel, { to: '203.0.113.200/29', table: 4294967295, metric: 3000000000 }),
    ).toMatchObject({ gateway: fleet.lab.hosts[1]!.ipv4 });

    // PATCH to the top of the range, and an identical POST finds the same route.
    const patched = await server.request('PATCH', `/v1/routes/${res.body.id}?wait=60`, {
      body: { metric: 4294967295 },
    });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toMatchObject({ metric: 4294967295, sync: { state: 'in_sync' } });
    const same = await server.request('POST', '/v1/routes', {
      body: { ...body, metric: 4294967295 },
    });
    expect(same.status, same.text).toBe(200);
    expect(same.body.id).toBe(res.body.id);
    expect(
      findRoute(await ownedRoutes(fleet.lab, 'h1'), {
        to: '203.0.113.200/29',
        table: 4294967295,
      }),
    ).toMatchObject({ metric: 4294967295 });
  });
});
