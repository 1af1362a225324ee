import type { Knex } from 'knex';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { startSshd, stopSshd } from '../../../src/lab/index.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';
import { useLab } from '../../helpers/lab.ts';
import { eventTrail, inMs, kernelHas, kernelLacks, poll, routeRow } from '../../helpers/routes.ts';
import { sleep } from '../../helpers/runs.ts';
import { spawnServer, type ServerProcess } from '../../helpers/server-process.ts';

// The work a write or a scheduled transition owes a host is a row committed with the change
// (host_work): it outlives a server killed with -9 before it could run, and a backoff keeps
// its attempts and retry time across a restart.
const T = 180_000;
// Kernel and row waits: an ansible run can take half a minute when other suites share the cores.
const KERNEL_MS = 90_000;
const postgres = inject('templateDatabase') !== null;

interface HostWork {
  desired_gen: number;
  attempted_gen: number;
  applied_gen: number;
  attempts: number;
  due_at: Date | null;
  claimed_by: string | null;
  last_error: string | null;
  last_run_id: string | null;
}

/** h1's work row, generations as numbers (node-pg hands int8 back as text). */
async function hostWork(knex: Knex, host = 'h1'): Promise<HostWork> {
  const row = await knex('host_work').where({ host }).first();
  expect(row, `host_work row of ${host}`).toBeDefined();
  return {
    ...row,
    desired_gen: Number(row.desired_gen),
    attempted_gen: Number(row.attempted_gen),
    applied_gen: Number(row.applied_gen),
  };
}

async function dbNow(knex: Knex): Promise<Date> {
  const { rows } = await knex.raw<{ rows: { now: Date }[] }>('select now() as now');
  return rows[0]!.now;
}

/** Apply runs that carried `host`, created at or after `since`, oldest first. */
async function applyRunsSince(knex: Knex, since: Date, host = 'h1') {
  return (await knex('runs')
    .where({ kind: 'apply' })
    .whereRaw('hosts @> ?::jsonb', [JSON.stringify([host])])
    .where('created_at', '>=', since)
    .orderBy('created_at')
    .select('id', 'status', 'owner', 'created_at')) as {
    id: string;
    status: string;
    owner: string;
    created_at: Date;
  }[];
}

/** The presence id (and so the run owner) of a spawned server names its pid. */
const ownedBy = (s: ServerProcess) => expect.stringContaining(`:${s.pid}:`);

/**
 * A session of the test's own holding the host's apply lock (HOST_LOCK_CLASS 0x7270484f in
 * src/reconciler/host-claims.ts), as a replica's run would: nobody can claim the host.
 */
async function holdHostLock(url: string, host: string) {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  await client.query(`select pg_advisory_lock(x'7270484f'::int, hashtext($1))`, [host]);
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await client.query(`select pg_advisory_unlock(x'7270484f'::int, hashtext($1))`, [host]);
      await client.end();
    },
    async end() {
      released = true;
      await client.end().catch(() => undefined);
    },
  };
}

describe.skipIf(!postgres)('durable host work across kill -9 (Postgres)', () => {
  const fleet = useLab(1);
  const databases: TestDatabase[] = [];
  const servers: ServerProcess[] = [];
  const locks: { end(): Promise<void> }[] = [];

  const newDatabase = async () => {
    const d = await createTestDatabase(inject('templateDatabase'));
    databases.push(d);
    return d;
  };

  const spawn = async (env: Record<string, string>) => {
    const s = await spawnServer({ INVENTORY: fleet.lab.inventoryPath, ...env });
    servers.push(s);
    return s;
  };

  afterEach(async () => {
    for (const l of locks.splice(0)) await l.end();
    const stopped = servers.splice(0);
    await Promise.all(stopped.map((s) => s.stop()));
    for (const s of stopped) s.cleanup();
    await startSshd(fleet.lab, 'h1');
  }, T);

  afterAll(async () => {
    for (const d of databases) await d.drop();
  }, T);

  it(
    'when a write commits while its host is locked and the server is killed with -9, then a new server on the database applies it, once',
    { timeout: T },
    async () => {
      const database = await newDatabase();
      const knex = database.db.knex;
      const lock = await holdHostLock(database.url!, 'h1');
      locks.push(lock);
      const first = await spawn({ DATABASE_URL: database.url! });
      const key = { to: '203.0.113.16/28' };

      const res = await first.request('POST', '/v1/routes?wait=0', {
        body: { host: 'h1', to: key.to, dev: 'eth0' },
      });
      expect(res.status, res.text).toBe(202);
      expect(res.body).toMatchObject({ status: 'active', sync: { state: 'applying' } });
      const id = res.body.id as string;
      expect(await routeRow(knex, id)).toMatchObject({
        status: 'active',
        sync_state: 'applying',
      });
      // Committed with the route: owed, due, and not taken by anyone (the lock is ours).
      const owed = await hostWork(knex);
      expect(owed.desired_gen).toBeGreaterThan(owed.attempted_gen);
      expect(owed.due_at).toBeInstanceOf(Date);
      expect(owed.claimed_by).toBeNull();
      expect(await applyRunsSince(knex, new Date(0))).toEqual([]);

      await first.kill();
      await lock.release();
      const restartedAt = await dbNow(knex);
      const second = await spawn({ DATABASE_URL: database.url!, DATA_DIR: first.dataDir });

      await kernelHas(fleet.lab, 'h1', key, KERNEL_MS);
      const settled = await poll(
        'h1 settled',
        async () => {
          const w = await hostWork(knex);
          return w.attempted_gen === w.desired_gen && w.due_at === null && w.claimed_by === null
            ? w
            : undefined;
        },
        KERNEL_MS,
      );
      expect(settled).toMatchObject({
        attempted_gen: owed.desired_gen,
        applied_gen: owed.desired_gen,
        desired_gen: owed.desired_gen,
        attempts: 0,
        last_error: null,
      });
      expect(await routeRow(knex, id)).toMatchObject({ status: 'active', sync_state: 'in_sync' });

      // Once: a little later still exactly one apply run for h1 since the restart, the new
      // server's, and the route was never changed again.
      await sleep(2_000);
      const runs = await applyRunsSince(knex, restartedAt);
      expect(runs).toEqual([
        expect.objectContaining({
          id: settled.last_run_id,
          status: 'succeeded',
          owner: ownedBy(second),
        }),
      ]);
      expect(await eventTrail(knex, id)).toEqual([['create', null, 'active']]);
    },
  );

  it(
    'when a scheduled expiry fires while its host is locked and the replica that fired it is killed with -9, then the surviving replica removes the route',
    { timeout: T },
    async () => {
      const database = await newDatabase();
      const knex = database.db.knex;
      // Short scheduler sleeps: either replica may be the one that fires the expiry.
      const env = { DATABASE_URL: database.url!, SCHEDULER_MAX_SLEEP_S: '1' };
      const replicas = await Promise.all([spawn(env), spawn(env)]);
      const key = { to: '203.0.113.32/28' };

      // Expiring in an hour at first: however long the apply takes on a busy machine, the
      // route is in the kernel before the host is locked.
      const res = await replicas[0]!.request('POST', '/v1/routes?wait=0', {
        body: { host: 'h1', to: key.to, dev: 'eth0', delete_at: inMs(3_600_000) },
      });
      expect([201, 202], res.text).toContain(res.status);
      const id = res.body.id as string;
      await kernelHas(fleet.lab, 'h1', key, KERNEL_MS);
      await poll(
        'the route in sync',
        async () => {
          const row = await routeRow(knex, id);
          return row.sync_state === 'in_sync' ? row : undefined;
        },
        KERNEL_MS,
      );

      const lock = await holdHostLock(database.url!, 'h1');
      locks.push(lock);
      expect(await routeRow(knex, id)).toMatchObject({ status: 'active', sync_state: 'in_sync' });
      const before = await hostWork(knex);
      // Then the expiry is brought forward behind the API's back, so that nothing but the
      // scheduler's own transaction can record the work it owes.
      await knex('routes')
        .where({ id })
        .update({ delete_at: knex.raw(`now() + interval '2 seconds'`) });

      await poll(
        'the route expired',
        async () => ((await routeRow(knex, id)).status === 'expired' ? true : undefined),
        30_000,
      );
      // The expiry and the work it owes committed together; nobody could run it.
      const owed = await hostWork(knex);
      expect(owed.desired_gen).toBe(before.desired_gen + 1);
      expect(owed.attempted_gen).toBe(before.desired_gen);
      expect(owed.due_at).toBeInstanceOf(Date);
      expect(owed.claimed_by).toBeNull();
      expect(await routeRow(knex, id)).toMatchObject({ sync_state: 'applying' });

      const firedIn = (s: ServerProcess) =>
        s.logs.some((l) => l.includes('"event":"scheduler.fired"'));
      const fired = await poll(
        'the replica that fired the expiry to log it',
        async () => replicas.find(firedIn),
        10_000,
      );
      const survivor = replicas.find((r) => r !== fired)!;
      expect(firedIn(survivor)).toBe(false);
      const killedAt = await dbNow(knex);
      await fired.kill();
      await kernelHas(fleet.lab, 'h1', key, 1_000);
      await lock.release();

      await kernelLacks(fleet.lab, 'h1', key, KERNEL_MS);
      const settled = await poll(
        'h1 settled',
        async () => {
          const w = await hostWork(knex);
          return w.attempted_gen === w.desired_gen && w.due_at === null && w.claimed_by === null
            ? w
            : undefined;
        },
        KERNEL_MS,
      );
      expect(settled).toMatchObject({
        desired_gen: owed.desired_gen,
        applied_gen: owed.desired_gen,
        attempts: 0,
        last_error: null,
      });
      expect(await routeRow(knex, id)).toMatchObject({
        status: 'expired',
        sync_state: 'in_sync',
        removed_reason: 'expired',
      });
      const runs = await applyRunsSince(knex, killedAt);
      expect(runs).toEqual([
        expect.objectContaining({
          id: settled.last_run_id,
          status: 'succeeded',
          owner: ownedBy(survivor),
        }),
      ]);
      expect(await eventTrail(knex, id)).toEqual([
        ['create', null, 'active'],
        ['expire', 'active', 'expired'],
      ]);
    },
  );

  it(
    'when the server is killed with -9 while a host is in backoff, then a new server keeps its attempts and retry time, retries no earlier, and converges once sshd is back',
    { timeout: T },
    async () => {
      const database = await newDatabase();
      const knex = database.db.knex;
      const env = {
        DATABASE_URL: database.url!,
        // The first retry comes 8 to 10 s after the first failure: long enough for a new
        // server to be up before it on a busy machine (a spawn takes 3 to 15 s here).
        RECONCILE_RETRY_BASE_S: '10',
        RECONCILE_RETRY_MAX_S: '20',
      };
      await stopSshd(fleet.lab, 'h1');
      const first = await spawn(env);
      const key = { to: '203.0.113.48/28' };

      const res = await first.request('POST', '/v1/routes?wait=0', {
        body: { host: 'h1', to: key.to, dev: 'eth0' },
      });
      expect([202, 502], res.text).toContain(res.status);
      const id = (res.body.id ?? res.body.route_id) as string;

      // Between runs: the failed run has ended and its retry is still well ahead.
      const backoff = await poll(
        'h1 in backoff after a failure',
        async () => {
          const row = await knex('host_work')
            .where({ host: 'h1' })
            .whereNull('claimed_by')
            .where('attempts', '>=', 1)
            .whereRaw(`due_at > now() + interval '6 seconds'`)
            .first();
          return row ? hostWork(knex) : undefined;
        },
        KERNEL_MS,
      );
      expect(backoff.last_error).toMatch(/\S/);
      expect(backoff.desired_gen).toBeGreaterThan(backoff.applied_gen);
      const dueAt = backoff.due_at!;
      // The route shows the same retry time.
      const failed = await routeRow(knex, id);
      expect(failed).toMatchObject({ status: 'active', sync_state: 'failed' });
      expect(failed.sync_retry_at?.getTime()).toBe(dueAt.getTime());

      await first.kill();
      const killedAt = await dbNow(knex);
      await spawn({ ...env, DATA_DIR: first.dataDir });
      // Read as soon as the new server answers: neither reset nor brought forward.
      const kept = await hostWork(knex);
      expect(kept.attempts).toBe(backoff.attempts);
      expect(kept.due_at?.getTime()).toBe(dueAt.getTime());
      expect(kept.desired_gen).toBe(backoff.desired_gen);

      await startSshd(fleet.lab, 'h1');
      await kernelHas(fleet.lab, 'h1', key, KERNEL_MS);
      const converged = await poll(
        'h1 converged',
        async () => {
          const w = await hostWork(knex);
          return w.applied_gen === w.desired_gen && w.due_at === null && w.claimed_by === null
            ? w
            : undefined;
        },
        KERNEL_MS,
      );
      expect(converged).toMatchObject({
        attempted_gen: backoff.desired_gen,
        attempts: 0,
        last_error: null,
      });
      expect(await routeRow(knex, id)).toMatchObject({
        sync_state: 'in_sync',
        sync_error: null,
        sync_retry_at: null,
      });

      // Every run since the kill was claimed at or after the recorded retry time.
      const runs = await applyRunsSince(knex, killedAt);
      expect(runs.length).toBeGreaterThanOrEqual(1);
      for (const r of runs) expect(r.created_at.getTime()).toBeGreaterThanOrEqual(dueAt.getTime());
      expect(runs.at(-1)).toMatchObject({ id: converged.last_run_id, status: 'succeeded' });
    },
  );
});
