import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Reconciler, type ReconcilerDeps } from '../../../src/reconciler/reconciler.ts';
import {
  FakeKind,
  FakeRuns,
  FakeWork,
  hostOk,
  hostUnreachable,
  recordingLogger,
  type FakeRun,
} from '../../helpers/fake-work.ts';

const T0 = new Date('2030-01-01T00:00:00Z').getTime();
const ROUTE = { id: 'a0000000-0000-4000-8000-000000000001', to: '203.0.113.0/28' };
/** backoffMs(0, 1000, ...) with random 0.5: the first retry comes 900 ms after the claim. */
const FIRST_RETRY_MS = 900;

/** Lets every timer due now, and every promise they free, run (time does not move). */
async function flush() {
  for (let i = 0; i < 10; i++) await vi.advanceTimersByTimeAsync(0);
}

/** Moves the clock on by `ms`, running what falls due on the way, then flushes. */
async function advance(ms: number) {
  await vi.advanceTimersByTimeAsync(ms);
  await flush();
}

let reconciler: Reconciler | null = null;

function setup(config: Partial<ReconcilerDeps['config']> = {}, random: () => number = () => 0.5) {
  const work = new FakeWork('me', random);
  const runs = new FakeRuns();
  const kind = new FakeKind();
  const { logger, lines } = recordingLogger();
  const rec = new Reconciler({
    config: {
      playbooksDir: '/playbooks',
      reconcileRetryBaseMs: 1_000,
      reconcileRetryMaxMs: 60_000,
      claimMaxHosts: 100,
      maxConcurrentRuns: 4,
      convergeIntervalMs: 0,
      repairDrift: true,
      ...config,
    },
    work,
    claims: work,
    kinds: [kind],
    runs,
    owner: 'me',
    logger,
    random,
  });
  reconciler = rec;
  return { rec, work, runs, kind, lines };
}

/** A write: bumps the hosts, as the write's transaction does, and tells the reconciler. */
function write(s: { rec: Reconciler; work: FakeWork }, ...hosts: string[]) {
  const ticket = s.work.bump(hosts);
  s.rec.wake();
  return ticket;
}

const only = (runs: FakeRuns): FakeRun => {
  expect(runs.going).toHaveLength(1);
  return runs.going[0]!;
};

beforeEach(() => {
  // setImmediate stays real: a fake one queued inside a timer would fire 1 ms later, which
  // the reconciler's "same turn" wake does not do.
  vi.useFakeTimers({ now: T0, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
});

afterEach(async () => {
  reconciler?.stop();
  reconciler = null;
  vi.useRealTimers();
});

describe('Reconciler: claims and runs', () => {
  it('when a write bumps a host, then exactly one run carries it, with its fence and its routes in its host vars', async () => {
    const s = setup();
    s.kind.desired.set('h1', [ROUTE]);
    await s.rec.start();
    write(s, 'h1');
    await flush();

    const run = only(s.runs);
    expect(run.req.hosts).toEqual(['h1']);
    expect(run.req.hostVars!.h1).toMatchObject({
      routeplane_fence: { name: 'h1', epoch: s.work.row('h1').epoch },
      routeplane_routes: { routes: [ROUTE] },
      routeplane_repair: true,
    });
    s.runs.succeed(run);
    await advance(10_000);
    expect(s.runs.started).toHaveLength(1);
  });

  it('when a run succeeds, then the host owes nothing: applied up to its generation and not due', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    const run = only(s.runs);
    s.runs.succeed(run);
    await flush();

    expect(s.work.row('h1')).toMatchObject({
      desiredGen: 1,
      attemptedGen: 1,
      appliedGen: 1,
      attempts: 0,
      dueAt: null,
      claimedBy: null,
      lastRunId: run.id,
    });
    expect(s.rec.heldHosts).toEqual([]);
  });

  it('when hosts fall due while a run is going, then they wait for it and share the next run', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    const first = only(s.runs);

    write(s, 'h2');
    await advance(300);
    write(s, 'h3');
    await advance(300);
    expect(s.runs.started).toHaveLength(1);

    s.runs.succeed(first);
    await flush();
    expect(only(s.runs).req.hosts).toEqual(['h2', 'h3']);
  });

  it('when a write commits while others are still open and nothing runs, then one run carries them all once they commit', async () => {
    const s = setup();
    await s.rec.start();
    s.work.inFlight = 2;
    write(s, 'h1');
    await advance(100);
    expect(s.runs.started).toHaveLength(0);
    s.work.inFlight = 1;
    write(s, 'h2');
    await advance(100);
    expect(s.runs.started).toHaveLength(0);
    s.work.inFlight = 0;
    write(s, 'h3');
    await flush();
    expect(only(s.runs).req.hosts).toEqual(['h1', 'h2', 'h3']);
  });

  it('when writes stay open longer than the in-flight bound, then what has committed is claimed without them', async () => {
    const s = setup();
    await s.rec.start();
    s.work.inFlight = 1;
    write(s, 'h1');
    await advance(950);
    expect(s.runs.started).toHaveLength(0);
    await advance(100);
    expect(only(s.runs).req.hosts).toEqual(['h1']);
  });

  it('when writes keep committing while more are on their way, then one run carries them all after the last commit, past the 1 s bound', async () => {
    const s = setup();
    await s.rec.start();
    s.work.inFlight = 3;
    write(s, 'h1');
    for (const host of ['h2', 'h3']) {
      await advance(600);
      s.work.inFlight--;
      write(s, host);
    }
    await advance(600);
    expect(s.runs.started).toHaveLength(0);
    s.work.inFlight = 0;
    write(s, 'h4');
    await flush();
    expect(only(s.runs).req.hosts).toEqual(['h1', 'h2', 'h3', 'h4']);
  });

  it('when the claim waits for a write on its way and that write ends without committing, then the claim goes at once', async () => {
    const s = setup();
    await s.rec.start();
    s.work.inFlight = 1;
    write(s, 'h1');
    await advance(50);
    expect(s.runs.started).toHaveLength(0);
    s.work.inFlight = 0;
    s.rec.writeEnded();
    await flush();
    expect(only(s.runs).req.hosts).toEqual(['h1']);
  });

  it('when writes keep committing with more always on their way, then what has committed is claimed at the gather bound (2 s)', async () => {
    const s = setup();
    await s.rec.start();
    s.work.inFlight = 1;
    write(s, 'h00');
    for (let i = 1; i <= 7; i++) {
      await advance(250);
      write(s, `h0${i}`);
    }
    expect(s.runs.started).toHaveLength(0);
    await advance(250);
    expect(only(s.runs).req.hosts).toHaveLength(8);
  });

  it('when the run going takes longer than the gather bound, then hosts due behind it get a run of their own', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    write(s, 'h2');
    await advance(1_900);
    expect(s.runs.started).toHaveLength(1);

    await advance(200);
    expect(s.runs.started.map((r) => r.req.hosts)).toEqual([['h1'], ['h2']]);
  });

  it('when more hosts are due than claimMaxHosts, then each run carries at most that many (25 hosts, max 10: 10, 10, 5)', async () => {
    const s = setup({ claimMaxHosts: 10 });
    const hosts = Array.from({ length: 25 }, (_, i) => `h${String(i).padStart(2, '0')}`);
    await s.rec.start();
    write(s, ...hosts);
    await flush();
    for (let i = 0; i < 5 && s.runs.going.length > 0; i++) {
      for (const r of s.runs.going) s.runs.succeed(r);
      await flush();
    }

    expect(s.runs.started.map((r) => r.req.hosts.length)).toEqual([10, 10, 5]);
    expect(s.runs.started.flatMap((r) => r.req.hosts).sort()).toEqual(hosts);
    expect(s.work.claimed.every((c) => c.max === 10)).toBe(true);
  });

  it('when a claim is full, then the hosts left behind are claimed at once, without waiting for the run', async () => {
    const s = setup({ claimMaxHosts: 10 });
    await s.rec.start();
    write(s, ...Array.from({ length: 25 }, (_, i) => `h${String(i).padStart(2, '0')}`));
    await flush();

    expect(s.runs.started.map((r) => r.req.hosts.length)).toEqual([10, 10, 5]);
  });

  it('when as many runs are going as maxConcurrentRuns, then no more hosts are claimed: they stay due for another replica', async () => {
    const s = setup({ claimMaxHosts: 10, maxConcurrentRuns: 2 });
    await s.rec.start();
    write(s, ...Array.from({ length: 25 }, (_, i) => `h${String(i).padStart(2, '0')}`));
    await flush();
    await advance(5_000);

    expect(s.runs.started.map((r) => r.req.hosts.length)).toEqual([10, 10]);
    expect(s.work.claimed).toHaveLength(2);
    const left = Array.from({ length: 5 }, (_, i) => `h${20 + i}`);
    expect(left.map((h) => s.work.row(h).claimedBy)).toEqual(left.map(() => null));
  });

  it('when one of the runs that filled maxConcurrentRuns ends, then the hosts left due are claimed at once', async () => {
    const s = setup({ claimMaxHosts: 10, maxConcurrentRuns: 1 });
    await s.rec.start();
    write(s, ...Array.from({ length: 15 }, (_, i) => `h${String(i).padStart(2, '0')}`));
    await flush();
    expect(s.runs.started.map((r) => r.req.hosts.length)).toEqual([10]);

    s.runs.succeed(only(s.runs));
    await flush();
    expect(s.runs.started.map((r) => r.req.hosts.length)).toEqual([10, 5]);
  });

  it('when a host is written to during its run, then it is due again right after: a run carries the newer generation', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    const first = only(s.runs);
    s.work.bump(['h1']);
    expect(s.work.row('h1')).toMatchObject({ desiredGen: 2, runGen: 1 });

    s.runs.succeed(first);
    await flush();
    expect(s.work.row('h1')).toMatchObject({ attemptedGen: 1, appliedGen: 1 });
    expect(s.runs.started).toHaveLength(2);
    expect(only(s.runs).req.hosts).toEqual(['h1']);
    expect(s.work.row('h1').runGen).toBe(2);
  });

  it('when the run cannot start, then the claimed hosts are finished as failed and retried', async () => {
    const s = setup();
    await s.rec.start();
    s.runs.failNextStart = new Error('no run slot');
    write(s, 'h1');
    await flush();

    expect(s.work.row('h1')).toMatchObject({
      attempts: 1,
      lastError: 'no run slot',
      claimedBy: null,
      dueAt: T0 + FIRST_RETRY_MS,
    });
    expect(s.rec.heldHosts).toEqual([]);
  });
});

describe('Reconciler: failures and retries', () => {
  it('when a host fails, then it is due again at the retry time finish recorded, with one more attempt', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    s.runs.end(only(s.runs), { h1: hostUnreachable('ssh: connection refused') });
    await flush();

    const row = s.work.row('h1');
    expect(row).toMatchObject({ attempts: 1, lastError: 'routes: ssh: connection refused' });
    expect(row.dueAt).toBe(T0 + FIRST_RETRY_MS);
    expect(s.work.finished[0]![0]!.retryAt).toEqual(new Date(row.dueAt!));

    await advance(FIRST_RETRY_MS - 1);
    expect(s.runs.started).toHaveLength(1);
    await advance(1);
    expect(s.runs.started).toHaveLength(2);
    expect(only(s.runs).req.hosts).toEqual(['h1']);
  });

  it('when a host fails, then the retry time its kind and the log are told is the one its row records', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    s.runs.end(only(s.runs), { h1: hostUnreachable() });
    await flush();

    const dueAt = new Date(s.work.row('h1').dueAt!);
    expect(s.kind.settled[0]!.hosts).toEqual([
      { host: 'h1', rendered: expect.anything(), converging: false, retryAt: dueAt },
    ]);
    const logged = s.lines.filter((l) => l.event === 'reconcile.retry_scheduled');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ host: 'h1', retry_at: dueAt.toISOString() });
  });

  it('when a host keeps failing, then each retry waits about twice as long as the last', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    const gaps: number[] = [];
    for (let i = 0; i < 3; i++) {
      const claimedAt = Date.now();
      s.runs.end(only(s.runs), { h1: hostUnreachable() });
      await flush();
      const dueAt = s.work.row('h1').dueAt!;
      gaps.push(dueAt - claimedAt);
      await advance(dueAt - Date.now());
    }

    expect(gaps).toEqual([900, 1_800, 3_600]);
    expect(s.work.row('h1').attempts).toBe(3);
  });

  it('when a host that failed then succeeds, then its attempts are reset and its error cleared', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    s.runs.end(only(s.runs), { h1: hostUnreachable() });
    await advance(FIRST_RETRY_MS);
    expect(s.work.row('h1').attempts).toBe(1);

    s.runs.succeed(only(s.runs));
    await flush();
    expect(s.work.row('h1')).toMatchObject({
      attempts: 0,
      lastError: null,
      dueAt: null,
      appliedGen: 1,
    });
  });

  it('when one host of a run fails, then only that host is retried', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1', 'h2');
    await flush();
    s.runs.end(only(s.runs), { h1: hostOk(), h2: hostUnreachable() });
    await advance(FIRST_RETRY_MS);

    expect(s.work.row('h1')).toMatchObject({ attempts: 0, dueAt: null });
    expect(only(s.runs).req.hosts).toEqual(['h2']);
  });

  it('when the host lock is lost, then the run is canceled and its hosts are finished as failed', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1', 'h2');
    await flush();
    const run = only(s.runs);

    s.work.loseLock('host lock connection closed');
    await flush();
    expect(s.runs.canceled).toEqual([run.id]);
    for (const h of ['h1', 'h2']) {
      expect(s.work.row(h)).toMatchObject({
        claimedBy: null,
        attempts: 1,
        attemptedGen: 1,
        appliedGen: 0,
        lastError: 'host lock connection closed',
        lastRunId: run.id,
        dueAt: T0 + FIRST_RETRY_MS,
      });
    }
  });

  it('when the host lock is lost and another instance took the host over, then this finish leaves its claim alone', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    const taken = s.work.takeOver('h1', 'other');

    s.work.loseLock();
    await flush();
    expect(s.work.row('h1')).toMatchObject({
      claimedBy: 'other',
      epoch: taken.epoch,
      attempts: 0,
      attemptedGen: 0,
      lastError: null,
    });
  });
});

describe('Reconciler: settling only what it still holds', () => {
  it('when another instance took the host over during the run, then the run ends without settling any of its objects', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    s.work.takeOver('h1', 'other');

    s.runs.succeed(only(s.runs));
    await flush();
    expect(s.kind.settled.flatMap((x) => x.hosts)).toEqual([]);
  });

  it('when the lock is lost, then the canceled run settles nothing', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();

    s.work.loseLock();
    await flush();
    expect(s.runs.canceled).toHaveLength(1);
    expect(s.kind.settled.flatMap((x) => x.hosts)).toEqual([]);
  });
});

describe('Reconciler: convergence', () => {
  it.each([
    [0, 48_000],
    [0.5, 60_000],
    [0.999, 71_976],
  ])(
    'when a host converged (random %s), then its next convergence is one interval out, spread 0.8x to 1.2x (%s ms)',
    async (random, expected) => {
      const s = setup({ convergeIntervalMs: 60_000 }, () => random);
      await s.rec.start();
      write(s, 'h1');
      await flush();
      s.runs.succeed(only(s.runs));
      await flush();

      expect(s.work.row('h1').convergeAt! - Date.now()).toBe(expected);
    },
  );

  it('when a host is due for convergence, then it is claimed as converging and its run repairs only with repairDrift', async () => {
    const s = setup({ convergeIntervalMs: 60_000, repairDrift: false });
    await s.rec.start();
    write(s, 'h1');
    await flush();
    const writeRun = only(s.runs);
    expect(writeRun.req.hostVars!.h1!.routeplane_repair).toBe(true);
    s.runs.succeed(writeRun);
    await flush();

    await advance(s.work.row('h1').convergeAt! - Date.now());
    const converge = only(s.runs);
    expect(converge.req.hostVars!.h1!.routeplane_repair).toBe(false);
    expect(s.work.claimed.at(-1)!).toMatchObject({ converge: true });
    expect(s.work.claimed.at(-1)!.hosts).toEqual([
      expect.objectContaining({ host: 'h1', converging: true }),
    ]);
    s.runs.succeed(converge);
    await flush();
    expect(s.kind.settled.at(-1)).toMatchObject({
      repairDrift: false,
      hosts: [{ host: 'h1', converging: true }],
    });
  });

  it('when repairDrift is on, then a convergence run repairs', async () => {
    const s = setup({ convergeIntervalMs: 60_000, repairDrift: true });
    await s.rec.start();
    write(s, 'h1');
    await flush();
    s.runs.succeed(only(s.runs));
    await advance(60_000);

    expect(only(s.runs).req.hostVars!.h1!.routeplane_repair).toBe(true);
  });

  it('when convergeIntervalMs is 0, then nothing is claimed for convergence', async () => {
    const s = setup({ convergeIntervalMs: 0 });
    await s.rec.start();
    write(s, 'h1');
    await flush();
    s.runs.succeed(only(s.runs));
    await flush();
    expect(s.work.row('h1').convergeAt).toBeNull();
    s.work.row('h1').convergeAt = Date.now() - 1;

    await advance(10_000);
    expect(s.runs.started).toHaveLength(1);
    expect(s.work.claimed.every((c) => !c.converge)).toBe(true);
  });

  it('when the reconciler starts with convergence on, then hosts with no convergence time get one within an interval', async () => {
    const s = setup({ convergeIntervalMs: 60_000 });
    s.work.bump(['h1']);
    s.work.row('h1').dueAt = null;

    await s.rec.start();
    expect(s.work.row('h1').convergeAt).toBe(T0 + 30_000);
  });

  it('when a convergence run fails with repairDrift off, then its retry still only reports drift', async () => {
    const s = setup({ convergeIntervalMs: 60_000, repairDrift: false });
    await s.rec.start();
    write(s, 'h1');
    await flush();
    s.runs.succeed(only(s.runs));
    await advance(60_000);
    s.runs.end(only(s.runs), { h1: hostUnreachable() });
    await advance(FIRST_RETRY_MS);

    expect(s.runs.started).toHaveLength(3);
    expect(only(s.runs).req.hostVars!.h1!.routeplane_repair).toBe(false);
  });

  it('when a failed write is claimed for convergence before its retry, then its run still applies the write', async () => {
    const s = setup({
      convergeIntervalMs: 10_000,
      reconcileRetryBaseMs: 20_000,
      repairDrift: false,
    });
    await s.rec.start();
    write(s, 'h1');
    await flush();
    s.runs.end(only(s.runs), { h1: hostUnreachable() });
    await flush();
    expect(s.work.row('h1').convergeAt!).toBeLessThan(s.work.row('h1').dueAt!);
    await advance(s.work.row('h1').convergeAt! - Date.now());

    expect(s.runs.started).toHaveLength(2);
    expect(only(s.runs).req.hostVars!.h1!.routeplane_repair).toBe(true);
  });
});

describe('Reconciler: waitForKernel', () => {
  it('when the run carrying the write ends within the wait, then the answer is settled and names that run', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    const run = only(s.runs);
    const answer = s.rec.waitForKernel(['h1'], 10_000);
    await advance(500);
    s.runs.succeed(run);
    await flush();

    const { settled, runIds } = await answer;
    expect(settled).toBe(true);
    expect(runIds).toEqual(new Map([['h1', run.id]]));
  });

  it('when a host failed, then the wait still settles on the run that attempted it', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    const run = only(s.runs);
    const answer = s.rec.waitForKernel(['h1'], 10_000);
    s.runs.end(run, { h1: hostUnreachable() });
    await flush();

    expect(await answer).toEqual({ settled: true, runIds: new Map([['h1', run.id]]) });
  });

  it('when the wait is 0 and the run carrying the write has started, then the answer is unsettled and names that run', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    const run = only(s.runs);

    expect(await s.rec.waitForKernel(['h1'], 0)).toEqual({
      settled: false,
      runIds: new Map([['h1', run.id]]),
    });
  });

  it('when the wait is 0 and a write came after the run started, then the answer names no run for it', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    s.work.bump(['h1']);

    const answer = s.rec.waitForKernel(['h1'], 0);
    await advance(2_000);
    expect(await answer).toEqual({ settled: false, runIds: new Map([['h1', null]]) });
  });

  it('when the hosts owe nothing, then the answer is settled at once', async () => {
    const s = setup();
    await s.rec.start();

    expect(await s.rec.waitForKernel(['h1'], 0)).toEqual({ settled: true, runIds: new Map() });
  });
});

describe('Reconciler: removal on shutdown', () => {
  it('when routes are removed from every host, then one run gives each free host nothing, under a new epoch', async () => {
    const s = setup();
    s.kind.desired.set('h1', [ROUTE]);
    s.kind.desired.set('h2', [ROUTE]);
    const removal = s.rec.removeAllFromHosts();
    await flush();
    const run = only(s.runs);
    expect(run.req.hosts).toEqual(['h1', 'h2']);
    expect(run.req.hostVars!.h1).toMatchObject({
      routeplane_routes: { routes: [] },
      routeplane_fence: { name: 'h1', epoch: T0 },
      routeplane_repair: true,
    });
    s.runs.succeed(run);

    expect(await removal).toMatchObject({ skipped: [] });
    expect(s.work.held).toEqual([]);
  });

  it('when a host is held by a run going, then removal leaves it alone and names it skipped', async () => {
    const s = setup();
    await s.rec.start();
    write(s, 'h1');
    await flush();
    const apply = only(s.runs);
    s.kind.desired.set('h1', [ROUTE]);
    s.kind.desired.set('h2', [ROUTE]);

    const removal = s.rec.removeAllFromHosts();
    await flush();
    const run = s.runs.going.find((r) => r !== apply)!;
    expect(run.req.hosts).toEqual(['h2']);
    s.runs.succeed(run);
    expect(await removal).toMatchObject({ skipped: ['h1'] });
  });
});

describe('FakeWork: the SQL guards it mirrors', () => {
  it('when a claim was taken over, then a finish from the older epoch leaves the newer claim alone', async () => {
    const work = new FakeWork('me');
    work.bump(['h1']);
    const [mine] = (await work.claim(10, false)).hosts;
    vi.advanceTimersByTime(5);
    const theirs = work.takeOver('h1', 'other');
    expect(theirs.epoch).toBeGreaterThan(mine!.epoch);

    await work.finish(
      [
        {
          host: 'h1',
          gen: 1,
          epoch: mine!.epoch,
          runId: null,
          error: 'boom',
          retryAt: new Date(T0 + 60_000),
        },
      ],
      'me',
      () => 0,
    );
    expect(work.row('h1')).toMatchObject({
      claimedBy: 'other',
      epoch: theirs.epoch,
      attempts: 0,
      attemptedGen: 0,
      lastError: null,
      dueAt: T0,
    });
  });

  it('when the same owner finishes with an older epoch than its current claim, then the row is left alone', async () => {
    const work = new FakeWork('me');
    work.bump(['h1']);
    const [first] = (await work.claim(10, false)).hosts;
    vi.advanceTimersByTime(5);
    const second = work.takeOver('h1', 'me');

    await work.finish(
      [{ host: 'h1', gen: 1, epoch: first!.epoch, runId: null, error: null, retryAt: null }],
      'me',
      () => 0,
    );
    expect(work.row('h1')).toMatchObject({ claimedBy: 'me', epoch: second.epoch, appliedGen: 0 });
  });

  it('when writes and convergences are both due, then the writes are claimed first', async () => {
    const work = new FakeWork('me');
    work.bump(['c1', 'w1']);
    Object.assign(work.row('c1'), { dueAt: null, appliedGen: 1, attemptedGen: 1 });
    work.row('c1').convergeAt = T0 - 1;

    const lease = await work.claim(1, true);
    expect(lease.hosts.map((h) => [h.host, h.converging])).toEqual([['w1', false]]);
    expect((await work.claim(1, true)).hosts.map((h) => [h.host, h.converging])).toEqual([
      ['c1', true],
    ]);
  });

  it('when a host is claimed, then its epoch is above the last one and at least the time in ms', async () => {
    const work = new FakeWork('me');
    work.bump(['h1']);
    work.row('h1').epoch = T0 + 1_000;

    const [claim] = (await work.claim(1, false)).hosts;
    expect(claim!.epoch).toBe(T0 + 1_001);
    expect(work.row('h1')).toMatchObject({ claimedBy: 'me', runGen: 1, runId: null });
  });
});
