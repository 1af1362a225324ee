import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/logger.ts';
import { moduleResult } from '../../src/reconciler/kind.ts';
import { ROUTES_MODULE } from '../../src/routes/route-results.ts';
import type { HostClaims, HostLease, HostLock } from '../../src/reconciler/host-claims.ts';
import type {
  ClaimedHost,
  HostFinish,
  Ticket,
  WorkState,
} from '../../src/reconciler/host-work-store.ts';
import type { DesiredKind, HostInRun, RenderedHost } from '../../src/reconciler/kind.ts';
import type { ApplyRuns, WorkRows } from '../../src/reconciler/reconciler.ts';
import type { RunRequest } from '../../src/runs/runs-service.ts';
import type {
  HostOutcome,
  OutcomeStatus,
  Run,
  RunStatus,
  TaskResult,
} from '../../src/runs/types.ts';

/** One host_work row, with times as epoch milliseconds (Date.now, faked by vi.useFakeTimers). */
export interface FakeRow {
  desiredGen: number;
  attemptedGen: number;
  appliedGen: number;
  attempts: number;
  dueAt: number | null;
  convergeAt: number | null;
  claimedBy: string | null;
  epoch: number;
  runGen: number | null;
  runId: string | null;
  lastError: string | null;
  lastRunId: string | null;
}

const newRow = (): FakeRow => ({
  desiredGen: 0,
  attemptedGen: 0,
  appliedGen: 0,
  attempts: 0,
  dueAt: null,
  convergeAt: null,
  claimedBy: null,
  epoch: 0,
  runGen: null,
  runId: null,
  lastError: null,
  lastRunId: null,
});

/** NEXT_EPOCH of host-work-store.ts: later than the last one, and at least the time in ms. */
const nextEpoch = (epoch: number) => Math.max(epoch + 1, Date.now());

/** One claim as the fake handed it out, with its lease. */
export interface FakeClaim {
  max: number;
  converge: boolean;
  hosts: ClaimedHost[];
  lease: FakeLease;
}

/** A lease of the fake claims: `lose()` does what a dead lock connection does. */
export class FakeLease implements HostLease {
  released = false;
  lostReason: string | null = null;
  private readonly listeners: ((reason: string) => void)[] = [];

  constructor(
    readonly hosts: ClaimedHost[],
    private readonly onRelease: (lease: FakeLease) => void,
  ) {}

  onLost(fn: (reason: string) => void): void {
    // As PostgresHostClaims: a listener added after the loss is told at once.
    if (this.lostReason !== null) fn(this.lostReason);
    else this.listeners.push(fn);
  }

  lose(reason: string): void {
    if (this.released || this.lostReason !== null) return;
    this.lostReason = reason;
    for (const fn of this.listeners) fn(reason);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.onRelease(this);
  }
}

/**
 * In-memory host_work rows and host claims with the semantics of the SQL in
 * host-work-store.ts and host-claims.ts, for unit tests of the reconciler. Serves as both
 * `work` and `claims` of a Reconciler whose owner is `owner`.
 */
export class FakeWork implements WorkRows, HostClaims {
  readonly rows = new Map<string, FakeRow>();
  /** Every claim made through `claim`, empty ones included, in order. */
  readonly claimed: FakeClaim[] = [];
  /** Every `finish` call's argument, in order. */
  readonly finished: HostFinish[][] = [];
  private readonly active = new Set<FakeLease>();
  private readonly locked = new Set<string>();
  /** Write transactions open (begun, bumped, not yet committed), as a test sets them. */
  inFlight = 0;

  constructor(
    readonly owner = 'me',
    private readonly random: () => number = Math.random,
  ) {}

  /** The row of a host (which must exist). */
  row(host: string): FakeRow {
    const r = this.rows.get(host);
    if (!r) throw new Error(`fake-work: no row for ${host}`);
    return r;
  }

  writesInFlight(): number {
    return this.inFlight;
  }

  /** A write's bump: each host gets the next generation and is due now. */
  bump(hosts: Iterable<string>): Ticket {
    const ticket: Ticket = new Map();
    for (const h of [...new Set(hosts)].sort()) {
      const r = this.rows.get(h) ?? newRow();
      this.rows.set(h, r);
      r.desiredGen += 1;
      r.dueAt = Date.now();
      ticket.set(h, r.desiredGen);
    }
    return ticket;
  }

  /** candidates(): unclaimed, due now (or due for convergence), writes first, at most `max`. */
  candidates(max: number, converge: boolean): string[] {
    const now = Date.now();
    const order = (v: number | null) => v ?? Number.POSITIVE_INFINITY;
    return [...this.rows]
      .filter(
        ([, r]) =>
          r.claimedBy === null &&
          ((r.dueAt !== null && r.dueAt <= now) ||
            (converge && r.convergeAt !== null && r.convergeAt <= now)),
      )
      .sort(
        ([, a], [, b]) =>
          order(a.dueAt) - order(b.dueAt) || order(a.convergeAt) - order(b.convergeAt),
      )
      .slice(0, max)
      .map(([h]) => h);
  }

  /** markClaimed(): a new epoch; the run carries the desired generation. */
  markClaimed(hosts: string[], owner: string): ClaimedHost[] {
    return hosts.map((host) => {
      const r = this.row(host);
      // As the SQL: converging only when every generation was applied.
      const owesNothing = r.desiredGen <= r.appliedGen;
      Object.assign(r, {
        claimedBy: owner,
        epoch: nextEpoch(r.epoch),
        runGen: r.desiredGen,
        runId: null,
      });
      return {
        host,
        gen: r.desiredGen,
        epoch: r.epoch,
        attempts: r.attempts,
        converging: owesNothing,
      };
    });
  }

  /**
   * Another instance takes the host over, as its orphan check and claim would once this
   * one's lock is gone: the claim is released, then claimed by `owner` with a new epoch.
   */
  takeOver(host: string, owner: string): ClaimedHost {
    const r = this.row(host);
    Object.assign(r, { claimedBy: null, runGen: null, runId: null });
    r.dueAt = Math.min(r.dueAt ?? Date.now(), Date.now());
    return this.markClaimed([host], owner)[0]!;
  }

  /** Fires the onLost listeners of every lease not released (the lock connection died). */
  loseLock(reason = 'host lock connection closed'): void {
    for (const lease of [...this.active]) lease.lose(reason);
  }

  /** Hosts held by a lease or a lock now. */
  get held(): string[] {
    return [
      ...new Set([...[...this.active].flatMap((l) => l.hosts.map((c) => c.host)), ...this.locked]),
    ];
  }

  // HostClaims

  async claim(max: number, converge: boolean): Promise<HostLease> {
    const held = new Set(this.held);
    const hosts = this.markClaimed(
      this.candidates(max, converge).filter((h) => !held.has(h)),
      this.owner,
    );
    const lease = new FakeLease(hosts, (l) => this.active.delete(l));
    if (hosts.length > 0) this.active.add(lease);
    this.claimed.push({ max, converge, hosts, lease });
    return lease;
  }

  async lock(hosts: string[]): Promise<HostLock> {
    const held = new Set(this.held);
    const mine = [...new Set(hosts)].filter((h) => !held.has(h));
    for (const h of mine) this.locked.add(h);
    return {
      hosts: mine,
      release: async () => {
        for (const h of mine) this.locked.delete(h);
      },
    };
  }

  // WorkRows

  async finish(
    finishes: HostFinish[],
    owner: string,
    convergeMs: (host: string) => number,
  ): Promise<void> {
    if (finishes.length === 0) return;
    this.finished.push(finishes.map((f) => ({ ...f })));
    const now = Date.now();
    for (const f of finishes) {
      const ok = f.error === null;
      const converge = convergeMs(f.host);
      const r = this.rows.get(f.host);
      // The SQL guard: a claim another instance (or a later claim) has taken is left alone.
      if (!r || r.claimedBy !== owner || r.epoch !== f.epoch) continue;
      r.claimedBy = null;
      r.runGen = null;
      r.runId = null;
      r.attemptedGen = Math.max(r.attemptedGen, f.gen);
      if (ok) r.appliedGen = Math.max(r.appliedGen, f.gen);
      r.attempts = ok ? 0 : r.attempts + 1;
      r.lastError = f.error;
      r.lastRunId = f.runId ?? r.lastRunId;
      r.dueAt = r.desiredGen > f.gen ? now : ok ? null : (f.retryAt?.getTime() ?? null);
      r.convergeAt = converge > 0 ? now + converge : null;
    }
  }

  async carriedBy(hosts: ClaimedHost[], owner: string, runId: string): Promise<void> {
    for (const c of hosts) {
      const r = this.rows.get(c.host);
      if (r && r.claimedBy === owner) r.runId = runId;
    }
  }

  async states(hosts: string[]): Promise<Map<string, WorkState>> {
    const out = new Map<string, WorkState>();
    for (const host of hosts) {
      const r = this.rows.get(host);
      if (!r) continue;
      out.set(host, {
        host,
        desiredGen: r.desiredGen,
        attemptedGen: r.attemptedGen,
        appliedGen: r.appliedGen,
        attempts: r.attempts,
        dueAt: r.dueAt === null ? null : new Date(r.dueAt),
        lastError: r.lastError,
        lastRunId: r.lastRunId,
        runGen: r.runGen,
        runId: r.runId,
      });
    }
    return out;
  }

  async nextDueAt(converge: boolean): Promise<Date | null> {
    const times = [...this.rows.values()]
      .filter((r) => r.claimedBy === null)
      .flatMap((r) => [r.dueAt, converge ? r.convergeAt : null])
      .filter((t): t is number => t !== null);
    return times.length === 0 ? null : new Date(Math.min(...times));
  }

  async nextEpochs(hosts: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const h of hosts) {
      const r = this.rows.get(h) ?? newRow();
      this.rows.set(h, r);
      r.epoch = nextEpoch(r.epoch);
      out.set(h, r.epoch);
    }
    return out;
  }

  async stillClaimed(claims: ClaimedHost[], owner: string): Promise<Set<string>> {
    return new Set(
      claims
        .filter((c) => {
          const r = this.rows.get(c.host);
          return r?.claimedBy === owner && r.epoch === c.epoch;
        })
        .map((c) => c.host),
    );
  }

  async markDue(hosts: string[]): Promise<void> {
    for (const h of hosts) {
      const r = this.rows.get(h);
      if (r) r.dueAt = Date.now();
    }
  }

  async scheduleConvergence(intervalMs: number): Promise<void> {
    const now = Date.now();
    for (const r of this.rows.values()) {
      if (r.convergeAt === null || r.convergeAt > now + intervalMs) {
        r.convergeAt = Math.min(
          r.convergeAt ?? Number.POSITIVE_INFINITY,
          now + this.random() * intervalMs,
        );
      }
    }
  }
}

/** How one host ended in a fake run: its routeplane_routes task result. */
export interface HostEnd {
  status: OutcomeStatus;
  msg?: string | null;
  data?: Record<string, unknown>;
  /** The module of the result; routeplane_routes unless told. */
  module?: string | null;
  task?: string;
}

export const hostOk = (data: Record<string, unknown> = {}): HostEnd => ({ status: 'ok', data });
export const hostUnreachable = (msg = 'Failed to connect to the host via ssh'): HostEnd => ({
  status: 'unreachable',
  msg,
});

/** One run the fake runs service started. */
export interface FakeRun {
  id: string;
  req: RunRequest;
  run: Run;
  ended: boolean;
  resolve: (run: Run) => void;
}

/**
 * Apply runs that start nothing: each start is recorded (hosts, hostVars) and the run goes on
 * until the test ends it with `end`, choosing each host's task result. `cancel` is recorded
 * and ends the run as canceled, as the runs service does.
 */
export class FakeRuns implements ApplyRuns {
  readonly started: FakeRun[] = [];
  readonly canceled: string[] = [];
  /** When set, the next start fails with it. */
  failNextStart: Error | null = null;

  async start(req: RunRequest): Promise<{ run: Run; done: Promise<Run> }> {
    if (this.failNextStart) {
      const err = this.failNextStart;
      this.failNextStart = null;
      throw err;
    }
    const id = `00000000-0000-4000-8000-${String(this.started.length + 1).padStart(12, '0')}`;
    const run: Run = {
      id,
      kind: req.kind,
      playbook: req.playbookName,
      hosts: req.hosts,
      limit: req.limit,
      status: 'running',
      requestedBy: req.actor.name,
      rc: null,
      createdAt: new Date(),
      startedAt: new Date(),
      finishedAt: null,
      summary: {},
      results: [],
      error: null,
      log: '',
      owner: 'me',
    };
    let resolve!: (r: Run) => void;
    const done = new Promise<Run>((r) => (resolve = r));
    this.started.push({ id, req, run, ended: false, resolve });
    return { run: { ...run }, done };
  }

  async cancel(id: string): Promise<unknown> {
    this.canceled.push(id);
    const r = this.get(id);
    if (!r.ended) this.end(r, {}, { status: 'canceled', error: 'canceled' });
    return undefined;
  }

  get(id: string): FakeRun {
    const r = this.started.find((s) => s.id === id);
    if (!r) throw new Error(`fake-runs: no run ${id}`);
    return r;
  }

  /** The runs not ended yet. */
  get going(): FakeRun[] {
    return this.started.filter((r) => !r.ended);
  }

  /** Ends a run: each host named gets its task result; hosts not named have none. */
  end(
    which: FakeRun | string,
    hosts: Record<string, HostEnd>,
    over: { status?: RunStatus; error?: string | null } = {},
  ): Run {
    const r = typeof which === 'string' ? this.get(which) : which;
    if (r.ended) throw new Error(`fake-runs: run ${r.id} already ended`);
    const summary: Record<string, HostOutcome> = {};
    const results: TaskResult[] = [];
    for (const [host, e] of Object.entries(hosts)) {
      const failed = e.status === 'failed' ? 1 : 0;
      const unreachable = e.status === 'unreachable' ? 1 : 0;
      summary[host] = {
        status: e.status,
        ok: failed || unreachable ? 0 : 1,
        changed: e.status === 'changed' ? 1 : 0,
        failures: failed,
        unreachable,
        skipped: 0,
        msg: e.msg ?? null,
      };
      results.push({
        host,
        task: e.task ?? 'Apply routes',
        module: e.module === undefined ? ROUTES_MODULE : e.module,
        status: e.status,
        changed: e.status === 'changed',
        msg: e.msg ?? null,
        data: e.data ?? {},
      });
    }
    const anyFailed = Object.values(hosts).some(
      (e) => e.status === 'failed' || e.status === 'unreachable',
    );
    const final: Run = {
      ...r.run,
      status: over.status ?? (anyFailed ? 'failed' : 'succeeded'),
      error: over.error ?? null,
      rc: anyFailed ? 2 : 0,
      finishedAt: new Date(),
      summary,
      results,
    };
    r.ended = true;
    r.run = final;
    r.resolve(final);
    return final;
  }

  /** Ends a run with every one of its hosts ok. */
  succeed(which: FakeRun | string): Run {
    const r = typeof which === 'string' ? this.get(which) : which;
    return this.end(r, Object.fromEntries(r.req.hosts.map((h) => [h, hostOk()])));
  }
}

/**
 * A kind of desired state whose render gives each host `{ routes: desired[host] }` and whose
 * settle reads the routeplane_routes result of each host (ok or changed: converged; else its
 * message), unless the test chose the host's problem in `problems`.
 */
export class FakeKind implements DesiredKind {
  readonly name = 'routes';
  readonly module = ROUTES_MODULE;
  readonly desired = new Map<string, unknown[]>();
  /** A host's problem as the test chose it (null: converged), over what the run says. */
  readonly problems = new Map<string, string | null>();
  readonly settled: { run: Run; hosts: HostInRun[]; repairDrift: boolean }[] = [];

  async render(hosts: string[]): Promise<Map<string, RenderedHost>> {
    return new Map(hosts.map((h) => [h, { args: { routes: this.desired.get(h) ?? [] } }]));
  }

  async settle(run: Run, hosts: HostInRun[], repairDrift: boolean) {
    this.settled.push({ run, hosts: hosts.map((h) => ({ ...h })), repairDrift });
    const out = new Map<string, string | null>();
    for (const { host } of hosts) {
      if (this.problems.has(host)) {
        out.set(host, this.problems.get(host)!);
        continue;
      }
      const task = moduleResult(run, host, this.module);
      const ok = task && (task.status === 'ok' || task.status === 'changed');
      out.set(host, ok ? null : (task?.msg ?? run.error ?? `no ${this.module} result`));
    }
    return out;
  }

  nothing(): RenderedHost {
    return { args: { routes: [] } };
  }

  async hostsWithObjects(): Promise<string[]> {
    return [...this.desired].filter(([, routes]) => routes.length > 0).map(([h]) => h);
  }
}

/** A logger that keeps every line it writes, parsed. */
export function recordingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: createLogger('debug', sink), lines };
}
