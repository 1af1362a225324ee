import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import type { Database } from '../../../src/db/database.ts';
import {
  InProcessHostClaims,
  PostgresHostClaims,
  type HostClaims,
  type HostLease,
} from '../../../src/reconciler/host-claims.ts';
import { HostWorkStore, type ClaimedHost } from '../../../src/reconciler/host-work-store.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';
import { sleep } from '../../helpers/runs.ts';
import { advisoryLockHolders } from '../../helpers/advisory-locks.ts';

// The durable host_work rows and the claims on them (ADR 008), against a real database: on
// Postgres two PostgresHostClaims of different owners stand for two replicas (each claim opens
// its own connection, as in production); on PGlite, InProcessHostClaims of one process.
const postgres = inject('templateDatabase') !== null;

/** The advisory-lock namespace of src/reconciler/host-claims.ts (ASCII "rpHO"). */
const HOST_LOCK_CLASS = 0x7270484f;

interface Row {
  host: string;
  desired_gen: number;
  attempted_gen: number;
  applied_gen: number;
  attempts: number;
  due_at: Date | null;
  converge_at: Date | null;
  claimed_by: string | null;
  epoch: number;
  last_error: string | null;
}

const hostsOf = (lease: HostLease) => lease.hosts.map((h) => h.host).sort();

interface Setup {
  database: () => TestDatabase;
  claimsFor: (owner: string) => HostClaims;
}

function behavesAsHostWork(name: string, setup: Setup) {
  describe(name, () => {
    let db: Database;
    let work: HostWorkStore;
    const leases: HostLease[] = [];
    const claimsFor = (owner: string) => setup.claimsFor(owner);
    const claim = async (claims: HostClaims, max: number, converge = false) => {
      const lease = await claims.claim(max, converge);
      leases.push(lease);
      return lease;
    };
    const bump = (hosts: string[]) => db.knex.transaction((trx) => work.bump(trx, hosts));
    const row = async (host: string): Promise<Row | undefined> => {
      const [r] = (await db.knex('host_work').where({ host })) as Row[];
      return r && { ...r, desired_gen: Number(r.desired_gen), epoch: Number(r.epoch) };
    };
    const finishOk = (c: ClaimedHost, owner: string, convergeMs = 0) =>
      work.finish(
        [{ host: c.host, gen: c.gen, epoch: c.epoch, runId: null, error: null, retryAt: null }],
        owner,
        () => convergeMs,
      );

    beforeAll(() => {
      db = setup.database().db;
    });
    beforeEach(async () => {
      work = new HostWorkStore(db.knex);
      await db.knex('host_work').delete();
    });
    afterEach(async () => {
      await Promise.all(leases.splice(0).map((l) => l.release()));
    });

    it('when two claimers of different owners claim at once, then they get disjoint hosts and together all of them', async () => {
      const all = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6'];
      await bump(all);
      const [a, b] = [claimsFor('replica-a'), claimsFor('replica-b')];
      const [first, second] = await Promise.all([claim(a, 3), claim(b, 3)]);
      expect(hostsOf(first).filter((h) => hostsOf(second).includes(h))).toEqual([]);
      // Whatever the race left over, a further claim of either takes; nothing twice.
      const rest = await claim(a, 6);
      const claimed = [...hostsOf(first), ...hostsOf(second), ...hostsOf(rest)].sort();
      expect(claimed).toEqual(all);
      expect(await claim(b, 6)).toMatchObject({ hosts: [] });
      for (const lease of [first, rest]) {
        for (const h of hostsOf(lease)) expect((await row(h))?.claimed_by, h).toBe('replica-a');
      }
      for (const h of hostsOf(second)) expect((await row(h))?.claimed_by, h).toBe('replica-b');
    });

    it('when more hosts are due than max, then a claim takes at most max and leaves the rest due', async () => {
      await bump(['m1', 'm2', 'm3', 'm4', 'm5']);
      const lease = await claim(claimsFor('replica-a'), 2);
      expect(lease.hosts).toHaveLength(2);
      const rows = (await db.knex('host_work').orderBy('host')) as Row[];
      expect(rows.filter((r) => r.claimed_by === 'replica-a')).toHaveLength(2);
      expect(rows.filter((r) => r.claimed_by === null && r.due_at !== null)).toHaveLength(3);
      expect(await claim(claimsFor('replica-b'), 2)).toMatchObject({
        hosts: [expect.anything(), expect.anything()],
      });
    });

    it('when a transaction that bumped a host rolls back, then no work is left and no one is told', async () => {
      let told = 0;
      work.onBumpCommitted(() => told++);
      await bump(['r2']);
      await sleep(10);
      expect(told).toBe(1);
      const before = await row('r2');

      const boom = new Error('rolled back on purpose');
      await expect(
        db.knex.transaction(async (trx) => {
          await work.bump(trx, ['r1', 'r2']);
          throw boom;
        }),
      ).rejects.toBe(boom);
      await sleep(10);
      expect(told).toBe(1);
      expect(await row('r1')).toBeUndefined();
      expect((await row('r2'))?.desired_gen).toBe(before!.desired_gen);

      // r2's own (committed) work is claimable; r1 never was.
      const lease = await claim(claimsFor('replica-a'), 10);
      expect(hostsOf(lease)).toEqual(['r2']);
      expect(lease.hosts[0]!.gen).toBe(1);
    });

    it('when a host in backoff is bumped, then it is due at once with the next generation', async () => {
      await bump(['b1']);
      const a = claimsFor('replica-a');
      const first = await claim(a, 1);
      const [c] = first.hosts;
      const retryAt = new Date(Date.now() + 3_600_000);
      await work.finish(
        [{ host: 'b1', gen: c!.gen, epoch: c!.epoch, runId: null, error: 'unreachable', retryAt }],
        'replica-a',
        () => 0,
      );
      await first.release();
      expect((await row('b1'))?.due_at?.getTime()).toBe(retryAt.getTime());
      expect(await claim(a, 1)).toMatchObject({ hosts: [] });

      await bump(['b1']);
      const r = (await row('b1'))!;
      expect(r.due_at!.getTime()).toBeLessThanOrEqual(Date.now());
      const again = await claim(claimsFor('replica-b'), 1);
      expect(again.hosts).toEqual([
        expect.objectContaining({ host: 'b1', gen: 2, attempts: 1, converging: false }),
      ]);
      expect(again.hosts[0]!.epoch).toBeGreaterThan(c!.epoch);
    });

    it('when hosts owe writes and others are due for convergence, then writes are claimed first', async () => {
      await bump(['c1', 'c2']);
      const a = claimsFor('replica-a');
      const converged = await claim(a, 2);
      for (const c of converged.hosts) await finishOk(c, 'replica-a', 1);
      await converged.release();
      await sleep(20);
      // c1 and c2 have been due for convergence longer than w1 has owed its write.
      await bump(['w1']);
      expect(hostsOf(await claim(a, 1, true))).toEqual(['w1']);
      expect(await claim(a, 5, false)).toMatchObject({ hosts: [] });
      const convergence = await claim(a, 5, true);
      expect(hostsOf(convergence)).toEqual(['c1', 'c2']);
      expect(convergence.hosts.every((h) => h.converging)).toBe(true);
    });
  });
}

describe.runIf(postgres)('host work and claims on Postgres (PostgresHostClaims)', () => {
  let database: TestDatabase;
  let admin: pg.Client;
  let work: HostWorkStore;
  const leases: HostLease[] = [];

  beforeAll(async () => {
    database = await createTestDatabase(inject('templateDatabase'));
    admin = new pg.Client({ connectionString: database.url! });
    await admin.connect();
  });
  afterAll(async () => {
    await Promise.all(leases.map((l) => l.release()));
    await admin?.end();
    await database?.drop();
  });

  const claimsFor = (owner: string) => {
    work = new HostWorkStore(database.db.knex);
    return new PostgresHostClaims(database.url!, work, owner);
  };

  behavesAsHostWork('shared behaviour', { database: () => database, claimsFor });

  /** The backend holding the host's advisory lock in this test's database. */
  async function lockHolder(host: string): Promise<number | undefined> {
    const holders = await advisoryLockHolders(admin, HOST_LOCK_CLASS, host);
    expect(holders.length).toBeLessThanOrEqual(1);
    return holders[0];
  }

  const claimedRow = async (host: string) => {
    const [r] = await database.db.knex('host_work').where({ host });
    return { claimedBy: r.claimed_by as string | null, epoch: Number(r.epoch), r };
  };

  it('when two claims hold hosts, then each holds its locks on a connection of its own until it is released', async () => {
    await database.db.knex('host_work').delete();
    await database.db.knex.transaction((trx) => work.bump(trx, ['k1', 'k2']));
    const first = await claimsFor('replica-a').claim(1, false);
    const second = await claimsFor('replica-a').claim(1, false);
    leases.push(first, second);
    expect([...hostsOf(first), ...hostsOf(second)].sort()).toEqual(['k1', 'k2']);
    const [p1, p2] = [await lockHolder('k1'), await lockHolder('k2')];
    expect(p1).toBeDefined();
    expect(p2).toBeDefined();
    expect(p1).not.toBe(p2);
    const [one] = first.hosts;
    await first.release();
    // Releasing closes the connection, and with it the lock; the other claim's stays.
    await expect
      .poll(() => lockHolder(one!.host), { timeout: 2_000, interval: 50 })
      .toBeUndefined();
    expect(await lockHolder(hostsOf(second)[0]!)).toBeDefined();
    await second.release();
  });

  it("when the holder's lock connection is terminated, then its lease is lost within 2 s and another claimer takes the host as an orphan with a higher epoch", async () => {
    await database.db.knex('host_work').delete();
    const a = claimsFor('replica-a');
    await database.db.knex.transaction((trx) => work.bump(trx, ['o1', 'o2']));
    const lease = await a.claim(2, false);
    leases.push(lease);
    expect(hostsOf(lease)).toEqual(['o1', 'o2']);
    const epochs = new Map(lease.hosts.map((h) => [h.host, h.epoch]));
    let lostAt: number | null = null;
    let reason = '';
    lease.onLost((r) => {
      lostAt = Date.now();
      reason = r;
    });

    // Held: another replica gets nothing (the rows are claimed and the locks taken).
    const b = claimsFor('replica-b');
    expect(await b.claim(5, false)).toMatchObject({ hosts: [] });

    const pid = await lockHolder('o1');
    expect(pid).toBeDefined();
    expect(await lockHolder('o2')).toBe(pid);
    const killedAt = Date.now();
    const { rows } = await admin.query<{ ok: boolean }>('select pg_terminate_backend($1) as ok', [
      pid,
    ]);
    expect(rows[0]!.ok).toBe(true);
    await expect.poll(() => lostAt, { timeout: 2_000, interval: 20 }).not.toBeNull();
    expect(lostAt! - killedAt).toBeLessThan(2_000);
    expect(reason).toMatch(/host lock connection/);
    // Told even when asked after the loss (the reconciler may register late).
    let lateReason: string | null = null;
    lease.onLost((r) => (lateReason = r));
    expect(lateReason).toBe(reason);

    // The rows still name replica-a, but its locks are gone: replica-b's orphan check frees
    // them and claims them, each with a later epoch. A fresh claimer: its first claim checks.
    const c = claimsFor('replica-b');
    const taken = await c.claim(5, false);
    leases.push(taken);
    expect(hostsOf(taken)).toEqual(['o1', 'o2']);
    for (const h of taken.hosts) {
      expect(h.epoch, h.host).toBeGreaterThan(epochs.get(h.host)!);
      expect(await claimedRow(h.host)).toMatchObject({ claimedBy: 'replica-b', epoch: h.epoch });
    }
    expect(await lockHolder('o1')).toBeDefined();
    expect(await lockHolder('o1')).not.toBe(pid);
    await taken.release();
  });

  it('when a claimer that lost its hold finishes with its stale epoch, then the rows of the claimer that took over are unchanged', async () => {
    await database.db.knex('host_work').delete();
    await database.db.knex.transaction((trx) => work.bump(trx, ['s1']));
    const a = claimsFor('replica-a');
    const stale = await a.claim(1, false);
    leases.push(stale);
    const [old] = stale.hosts;
    await admin.query('select pg_terminate_backend($1)', [await lockHolder('s1')]);
    await new Promise<void>((resolve) => stale.onLost(() => resolve()));

    const b = claimsFor('replica-b');
    const fresh = await b.claim(1, false);
    leases.push(fresh);
    const [now] = fresh.hosts;
    expect(now!.epoch).toBeGreaterThan(old!.epoch);
    const before = (await claimedRow('s1')).r;

    // replica-a's run ended after all: its finish (success or failure) must not touch s1.
    for (const error of [null, 'host lock lost'] as const) {
      await work.finish(
        [
          {
            host: 's1',
            gen: old!.gen,
            epoch: old!.epoch,
            runId: null,
            error,
            retryAt: error ? new Date(Date.now() + 60_000) : null,
          },
        ],
        'replica-a',
        () => 0,
      );
      expect((await claimedRow('s1')).r).toEqual(before);
    }
    // The owner's name alone does not make an old finish current: replica-b's own stale epoch
    // (its claim superseded by a later one of its own) is refused as well.
    await work.finish(
      [
        {
          host: 's1',
          gen: now!.gen,
          epoch: now!.epoch - 1,
          runId: null,
          error: 'x',
          retryAt: null,
        },
      ],
      'replica-b',
      () => 0,
    );
    expect((await claimedRow('s1')).r).toEqual(before);

    // The current holder's finish does settle it.
    await work.finish(
      [{ host: 's1', gen: now!.gen, epoch: now!.epoch, runId: null, error: null, retryAt: null }],
      'replica-b',
      () => 0,
    );
    expect(await claimedRow('s1')).toMatchObject({
      claimedBy: null,
      r: { applied_gen: 1, attempted_gen: 1, due_at: null },
    });
  });
});

// PGlite: one process owns the database; its reconciler's claims share one in-process set.
describe('host work and claims on PGlite (InProcessHostClaims)', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase(null, 'pglite');
  });
  afterAll(async () => {
    await database?.drop();
  });
  behavesAsHostWork('shared behaviour', {
    database: () => database,
    claimsFor: (owner) =>
      new InProcessHostClaims(database.db, new HostWorkStore(database.db.knex), owner),
  });

  it('when the claims are voided (a restart), then a later claim takes the host with a higher epoch and the old finish changes nothing', async () => {
    const work = new HostWorkStore(database.db.knex);
    await database.db.knex('host_work').delete();
    await database.db.knex.transaction((trx) => work.bump(trx, ['p1']));
    const before = new InProcessHostClaims(database.db, work, 'before-restart');
    const [old] = (await before.claim(1, false)).hosts;
    expect(old).toMatchObject({ host: 'p1' });
    await work.releaseAll();
    const after = new InProcessHostClaims(database.db, work, 'after-restart');
    const lease = await after.claim(1, false);
    const [now] = lease.hosts;
    expect(now!.epoch).toBeGreaterThan(old!.epoch);
    const row = async () => (await database.db.knex('host_work').where({ host: 'p1' }))[0];
    const held = await row();
    await work.finish(
      [{ host: 'p1', gen: old!.gen, epoch: old!.epoch, runId: null, error: null, retryAt: null }],
      'before-restart',
      () => 0,
    );
    expect(await row()).toEqual(held);
    await lease.release();
  });
});
