import type { Actor } from '../auth/roles.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { RunRequest } from '../runs/runs-service.ts';
import type { Run } from '../runs/types.ts';
import { backoffMs } from './backoff.ts';
import type { HostClaims, HostLease } from './host-claims.ts';
import { HostPhases } from './host-phase.ts';
import type { ClaimedHost, HostFinish, HostWorkStore, WorkState } from './host-work-store.ts';
import type { DesiredKind, HostInRun, RenderedHost } from './kind.ts';

const SYSTEM: Actor = { name: 'reconciler', role: 'admin' };
/** The playbook every apply run uses: one task per kind, each host's objects in its own file. */
export const APPLY_PLAYBOOK = { name: 'apply', file: 'apply.yml' } as const;
/**
 * Group commit across hosts: hosts that fall due while an apply run of this process is going
 * wait for it to end, up to this long (about one run), and then share one run. Without it, a
 * bulk of writes for many hosts (20 POSTs of 1,000 routes, committed one after another)
 * started a run per write, each paying ansible-playbook's start-up. The bound keeps a slow run
 * (an unreachable host) from holding other hosts back for long.
 */
const GATHER_MS = 2_000;
/**
 * How long an idle claimer waits, after the last commit, for writes still on their way (open
 * transactions, and requests still being read: HostWorkStore.writesInFlight): a bulk of
 * writes arriving together goes out as one run, not a small first run and the rest behind
 * it. Each commit extends the wait, up to GATHER_MS in all; a write that stops making
 * progress holds the others this long at most. Concurrent writes share transactions
 * (shared/batcher.ts), so a bulk commits in a few large steps: 10,000 routes take about
 * 0.4 s to commit, and a shorter bound split a bulk of 20 x 1,000 in two. A lone write has
 * nothing in flight when it commits and is claimed at once.
 */
const IN_FLIGHT_WAIT_MS = 1_000;
/** The longest the claimer sleeps: work other replicas record is found within this. */
const POLL_MS = 1_000;
/** How soon to look again when due hosts were there but all held elsewhere. */
const HELD_RETRY_MS = 250;
/** How often a waiter re-reads its hosts' rows (runs of other replicas end unannounced). */
interface Watcher {
  hosts: string[];
  ready(states: Map<string, WorkState>): boolean;
  deadline: number;
  resolve(states: Map<string, WorkState>): void;
  reject(err: unknown): void;
}

const WAIT_POLL_MS = 200;
/** How long an answer given before its run ended waits for that run to exist, to name it. */
const RUN_ID_WAIT_MS = 2_000;

type ReconcilerConfig = Pick<
  Config,
  | 'playbooksDir'
  | 'reconcileRetryBaseMs'
  | 'reconcileRetryMaxMs'
  | 'claimMaxHosts'
  | 'maxConcurrentRuns'
  | 'convergeIntervalMs'
  | 'repairDrift'
>;

/** The work rows as the reconciler uses them (an in-memory fake serves in unit tests). */
export type WorkRows = Pick<
  HostWorkStore,
  | 'finish'
  | 'carriedBy'
  | 'states'
  | 'nextDueAt'
  | 'nextEpochs'
  | 'scheduleConvergence'
  | 'markDue'
  | 'stillClaimed'
  | 'writesInFlight'
>;

/** The runs as the reconciler uses them. */
export interface ApplyRuns {
  start(req: RunRequest): Promise<{ run: Run; done: Promise<Run> }>;
  cancel(id: string): Promise<unknown>;
}

export interface ReconcilerDeps {
  config: ReconcilerConfig;
  work: WorkRows;
  claims: HostClaims;
  kinds: DesiredKind[];
  runs: ApplyRuns;
  /** This process's name in claims (its presence id). */
  owner: string;
  logger: Logger;
  /** Each host's management address, which its apply module must never route away. */
  managementAddresses?: (hosts: string[]) => Promise<Record<string, string>>;
  random?: () => number;
  /** Told how each claimed host's apply ended (metrics: retries, write-to-kernel lag). */
  onSettled?: (
    hosts: { host: string; gen: number; failed: boolean; converging: boolean }[],
  ) => void;
  /** Told when a caller starts waiting for the kernel: it has written all it will. */
  onCallerWaiting?: () => void;
}

export interface Settlement {
  /** Whether every host concerned ran a run that carried the change. */
  settled: boolean;
  /** Per host, the run that carried (or is carrying) the change, when one has started. */
  runIds: Map<string, string | null>;
}

/**
 * Makes hosts match the database. Writes record the work they owe in durable per-host rows
 * (host-work-store.ts); this claims due rows, runs one apply run per claim carrying every
 * kind, and settles each host's row: converged, or due again at its backoff time. Whatever a
 * process dies holding is released and run by another (or by itself after a restart).
 */
export class Reconciler {
  private readonly phases = new HostPhases();
  private readonly random: () => number;
  /** Apply runs of this process going now. */
  private going = 0;
  /** When this process was first told of work since its last claim (group commit). */
  private wokenAt: number | null = null;
  /** When it was last told of work (a commit): writes still arriving keep a claim waiting. */
  private lastWokenAt = 0;
  /** Whether the claimer is sleeping for writes in flight (writeEnded may wake it). */
  private heldForWrites = false;
  private claimNow = false;
  private pumpQueued = false;
  private pumping: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly running = new Set<Promise<void>>();
  /** Writes waiting for their hosts' kernels: one state read serves all of them. */
  private readonly watchers = new Set<Watcher>();
  private watchTimer: NodeJS.Timeout | null = null;
  private watching: Promise<void> | null = null;
  private watchAgain = false;
  private started = false;
  private stopped = false;

  constructor(private readonly deps: ReconcilerDeps) {
    this.random = deps.random ?? Math.random;
  }

  private get convergeOn(): boolean {
    return this.deps.config.convergeIntervalMs > 0;
  }

  /** Starts claiming: whatever is owed (also from before a restart) is run now. */
  async start(): Promise<void> {
    this.started = true;
    if (this.convergeOn)
      await this.deps.work.scheduleConvergence(this.deps.config.convergeIntervalMs);
    this.wake();
  }

  /**
   * Something may have fallen due (a write, a transition): look now. `now` skips the group
   * commit wait (a full claim left due hosts behind: they are not waiting to join a run).
   */
  wake(now = false): void {
    if (!this.started || this.stopped) return;
    if (now) this.claimNow = true;
    else {
      this.wokenAt ??= Date.now();
      this.lastWokenAt = Date.now();
    }
    this.schedulePump();
  }

  /** A write on its way has ended: a claim held back for writes in flight may go now. */
  writeEnded(): void {
    if (this.heldForWrites && this.deps.work.writesInFlight() === 0) this.lookAgain();
  }

  /** Looks again (a timer, a run that ended): not news of a write, so no longer wait for one. */
  private lookAgain(): void {
    if (!this.started || this.stopped) return;
    this.wokenAt ??= Date.now();
    this.schedulePump();
  }

  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    // setImmediate: writes committed in the same turn of the event loop share one claim.
    setImmediate(() => {
      this.pumpQueued = false;
      void this.pump();
    });
  }

  private pump(): Promise<void> {
    if (this.pumping) return this.pumping.then(() => this.lookAgain());
    this.pumping = this.claimAndRun()
      .catch((err) => {
        this.deps.logger.error({ event: 'reconcile.failed', err }, 'reconcile pass failed');
        this.sleep(POLL_MS);
      })
      .finally(() => {
        this.pumping = null;
      });
    return this.pumping;
  }

  private async claimAndRun(): Promise<void> {
    if (this.stopped) return;
    const now = this.claimNow;
    this.claimNow = false;
    // A claim taken now would only queue for a run slot, while another replica may be idle:
    // due hosts stay in host_work for whoever can start them, and the end of a run here
    // looks again.
    if (this.going >= this.deps.config.maxConcurrentRuns) return;
    if (!now && this.going > 0 && this.wokenAt !== null) {
      // Group commit: gather behind the run that is going, unless it takes too long.
      const wait = this.wokenAt + GATHER_MS - Date.now();
      if (wait > 0) return this.sleep(wait);
    }
    if (!now && this.going === 0 && this.wokenAt !== null && this.deps.work.writesInFlight() > 0) {
      // Their commits wake this again; the timer bounds the wait.
      const until = Math.min(this.wokenAt + GATHER_MS, this.lastWokenAt + IN_FLIGHT_WAIT_MS);
      const wait = until - Date.now();
      if (wait > 0) {
        this.heldForWrites = true;
        return this.sleep(wait);
      }
    }
    this.heldForWrites = false;
    this.wokenAt = null;
    const lease = await this.deps.claims.claim(this.deps.config.claimMaxHosts, this.convergeOn);
    if (lease.hosts.length === 0) return this.sleepUntilDue();
    const p = this.carry(lease).finally(() => {
      this.running.delete(p);
      this.going--;
      this.notifyWaiters();
      this.lookAgain();
    });
    this.going++;
    this.running.add(p);
    // A full claim leaves more due hosts behind: look again at once.
    if (lease.hosts.length >= this.deps.config.claimMaxHosts) this.wake(true);
    else await this.sleepUntilDue();
  }

  private async sleepUntilDue(): Promise<void> {
    const next = await this.deps.work.nextDueAt(this.convergeOn);
    const ms = next === null ? POLL_MS : Math.max(HELD_RETRY_MS, next.getTime() - Date.now());
    this.sleep(Math.min(ms, POLL_MS));
  }

  private sleep(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.lookAgain();
    }, ms);
  }

  /** One apply run for the claimed hosts, then each host's row settled. */
  private async carry(lease: HostLease): Promise<void> {
    const claims = lease.hosts;
    for (const c of claims) this.phases.apply(c.host, { type: 'claimed', claim: c });
    let lost: string | null = null;
    let run: Run | null = null;
    // Taken when the run has ended (a run may outlast a backoff), and recorded as it is shown.
    let retryAt = new Map(claims.map((c) => [c.host, this.retryTime(c)]));
    let problems = new Map<string, string | null>();
    let rendered: Map<string, RenderedHost>[] = [];
    try {
      const started = await this.startRun(claims, false, (r) => (rendered = r));
      for (const c of claims) this.phases.apply(c.host, { type: 'started', runId: started.run.id });
      await this.deps.work.carriedBy(claims, this.deps.owner, started.run.id);
      this.notifyWaiters();
      lease.onLost((reason) => {
        lost = reason;
        this.deps.logger.error(
          {
            event: 'reconcile.lock_lost',
            run_id: started.run.id,
            hosts: claims.map((c) => c.host),
            reason,
          },
          'host lock lost: stopping the run that depended on it',
        );
        void this.deps.runs.cancel(started.run.id).catch(() => undefined);
      });
      run = await started.done;
      for (const c of claims) this.phases.apply(c.host, { type: 'ended' });
      retryAt = new Map(claims.map((c) => [c.host, this.retryTime(c)]));
      // Only hosts this process still holds are settled: after a lost lock another replica
      // may have taken a host over, and its run's outcome is the one that counts.
      const held = lost
        ? new Set<string>()
        : await this.deps.work.stillClaimed(claims, this.deps.owner);
      problems = await this.settle(
        run,
        claims.filter((c) => held.has(c.host)),
        retryAt,
        rendered,
      );
      for (const c of claims) {
        if (!held.has(c.host)) problems.set(c.host, 'the host lock was lost during the run');
      }
    } catch (err) {
      this.deps.logger.error(
        { event: 'reconcile.apply_failed', hosts: claims.map((c) => c.host), err },
        'apply could not run',
      );
      for (const c of claims) {
        if (this.phases.get(c.host)?.phase !== 'settling')
          this.phases.apply(c.host, { type: 'failed' });
        problems.set(c.host, (err as Error).message);
      }
    }
    const finishes: HostFinish[] = claims.map((c) => {
      const error = lost ?? problems.get(c.host) ?? null;
      return {
        host: c.host,
        gen: c.gen,
        epoch: c.epoch,
        runId: run?.id ?? null,
        error,
        retryAt: error === null ? null : retryAt.get(c.host)!,
      };
    });
    this.deps.onSettled?.(claims.map((c, i) => ({ ...c, failed: finishes[i]!.error !== null })));
    for (const f of finishes) {
      if (f.error !== null) {
        this.deps.logger.warn(
          {
            event: 'reconcile.retry_scheduled',
            host: f.host,
            retry_at: f.retryAt,
            reason: f.error,
          },
          'host will be retried',
        );
      }
    }
    try {
      await this.deps.work.finish(finishes, this.deps.owner, () => this.convergeDelay());
    } catch (err) {
      // The claim stays recorded: the orphan check (or a restart) makes the host due again.
      this.deps.logger.error(
        { event: 'reconcile.finish_failed', err },
        'could not record the outcome',
      );
    } finally {
      await lease.release();
      for (const c of claims) this.phases.apply(c.host, { type: 'finished' });
    }
  }

  /** Every kind settles its objects; a host converged only if every kind did. */
  private async settle(
    run: Run,
    claims: ClaimedHost[],
    retryAt: Map<string, Date>,
    rendered: Map<string, RenderedHost>[],
  ) {
    const problems = new Map<string, string | null>(claims.map((c) => [c.host, null]));
    for (const [i, kind] of this.deps.kinds.entries()) {
      const hosts: HostInRun[] = claims.map((c) => ({
        host: c.host,
        rendered: rendered[i]?.get(c.host),
        converging: c.converging,
        retryAt: retryAt.get(c.host)!,
      }));
      const found = await kind.settle(run, hosts, this.deps.config.repairDrift);
      for (const [host, problem] of found) {
        if (problem && !problems.get(host)) problems.set(host, `${kind.name}: ${problem}`);
      }
    }
    return problems;
  }

  private retryTime(c: ClaimedHost): Date {
    const { reconcileRetryBaseMs, reconcileRetryMaxMs } = this.deps.config;
    return new Date(
      Date.now() + backoffMs(c.attempts, reconcileRetryBaseMs, reconcileRetryMaxMs, this.random),
    );
  }

  /** When a converged host is re-applied: about one interval, spread so hosts do not bunch. */
  private convergeDelay(): number {
    const interval = this.deps.config.convergeIntervalMs;
    return interval > 0 ? Math.round(interval * (0.8 + 0.4 * this.random())) : 0;
  }

  /** The apply run: each host's desired objects in its own file, one task per kind. */
  private async startRun(
    claims: ClaimedHost[],
    removeAll = false,
    onRendered: (rendered: Map<string, RenderedHost>[]) => void = () => undefined,
  ) {
    const hosts = claims.map((c) => c.host);
    const [mgmt, ...rendered] = await Promise.all([
      this.deps.managementAddresses?.(hosts) ?? Promise.resolve({} as Record<string, string>),
      ...this.deps.kinds.map((k) => k.render(hosts)),
    ]);
    onRendered(rendered);
    const hostVars: Record<string, Record<string, unknown>> = {};
    for (const c of claims) {
      const vars: Record<string, unknown> = {
        routeplane_fence: { name: c.host, epoch: c.epoch },
        // Drift found by a convergence run is repaired only with REPAIR_DRIFT; a run that
        // carries a write always makes the host match.
        routeplane_repair: !c.converging || this.deps.config.repairDrift,
        routeplane_management_address: mgmt[c.host] ?? null,
      };
      this.deps.kinds.forEach((k, i) => {
        vars[`routeplane_${k.name}`] = (
          removeAll ? k.nothing() : (rendered[i]!.get(c.host) ?? k.nothing())
        ).args;
      });
      hostVars[c.host] = vars;
    }
    return this.deps.runs.start({
      kind: 'apply',
      playbookName: APPLY_PLAYBOOK.name,
      playbookRoot: this.deps.config.playbooksDir,
      playbookFile: APPLY_PLAYBOOK.file,
      hosts,
      limit: hosts,
      extravars: {},
      hostVars,
      actor: SYSTEM,
    });
  }

  /**
   * Waits up to `ms` until runs carrying every change made so far to these hosts have ended,
   * then names the run carrying each host's change (waiting a little for one to start, so a
   * 202 can point at it).
   */
  async waitForKernel(hosts: Iterable<string>, ms: number): Promise<Settlement> {
    this.deps.onCallerWaiting?.();
    const wanted = [...new Set(hosts)];
    const ticket = new Map(
      [...(await this.deps.work.states(wanted))].map(([h, s]) => [h, s.desiredGen]),
    );
    const settledIn = (states: Map<string, WorkState>) =>
      [...ticket].every(([h, gen]) => (states.get(h)?.attemptedGen ?? gen) >= gen);
    const carriedIn = (states: Map<string, WorkState>) =>
      [...ticket].every(([h, gen]) => {
        const s = states.get(h);
        return (
          !s || s.attemptedGen >= gen || (s.runGen !== null && s.runGen >= gen && s.runId !== null)
        );
      });
    let states = await this.until(ticket, settledIn, ms);
    if (!settledIn(states))
      states = await this.until(ticket, (s) => settledIn(s) || carriedIn(s), RUN_ID_WAIT_MS);
    const runIds = new Map<string, string | null>();
    for (const [h, gen] of ticket) {
      const s = states.get(h);
      if (s && s.attemptedGen >= gen) runIds.set(h, s.lastRunId);
      else if (s && s.runGen !== null && s.runGen >= gen) runIds.set(h, s.runId);
      else runIds.set(h, null);
    }
    return { settled: settledIn(states), runIds };
  }

  private until(
    ticket: Map<string, number>,
    ready: (s: Map<string, WorkState>) => boolean,
    ms: number,
  ): Promise<Map<string, WorkState>> {
    return new Promise((resolve, reject) => {
      this.watchers.add({
        hosts: [...ticket.keys()],
        ready,
        deadline: Date.now() + ms,
        resolve,
        reject,
      });
      this.notifyWaiters();
    });
  }

  /**
   * Checks every waiting write now, with one read of the states of all their hosts: 200
   * concurrent writes cost one query per check, not 200 (on the embedded database every
   * query takes the service's own CPU). Then again every WAIT_POLL_MS, for settlements
   * another replica makes, until no write waits.
   */
  private notifyWaiters(): void {
    if (this.watchTimer) clearTimeout(this.watchTimer);
    this.watchTimer = null;
    if (this.watching) {
      this.watchAgain = true;
      return;
    }
    this.watching = this.checkWatchers().finally(() => {
      this.watching = null;
      if (this.watchAgain) {
        this.watchAgain = false;
        this.notifyWaiters();
      } else if (this.watchers.size > 0) {
        const soonest = Math.min(...[...this.watchers].map((w) => w.deadline));
        const delay = Math.max(0, Math.min(WAIT_POLL_MS, soonest - Date.now()));
        this.watchTimer = setTimeout(() => this.notifyWaiters(), delay);
      }
    });
  }

  private async checkWatchers(): Promise<void> {
    const batch = [...this.watchers];
    if (batch.length === 0) return;
    let states: Map<string, WorkState>;
    try {
      states = await this.deps.work.states([...new Set(batch.flatMap((w) => w.hosts))]);
    } catch (err) {
      for (const w of batch) {
        this.watchers.delete(w);
        w.reject(err);
      }
      return;
    }
    const now = Date.now();
    for (const w of batch) {
      const own = new Map(w.hosts.flatMap((h) => (states.has(h) ? [[h, states.get(h)!]] : [])));
      if (w.ready(own) || now >= w.deadline || this.stopped) {
        this.watchers.delete(w);
        w.resolve(own);
      }
    }
  }

  /**
   * Removes routeplane's objects from every host that has some, without touching the
   * database: the next start-up puts them back. Hosts whose lock is held (an apply still
   * going, here or in another process) are left alone, so no apply can put them back behind
   * the removal.
   */
  async removeAllFromHosts(): Promise<{ run: Run | null; skipped: string[] }> {
    const wanted = [
      ...new Set((await Promise.all(this.deps.kinds.map((k) => k.hostsWithObjects()))).flat()),
    ];
    if (wanted.length === 0) return { run: null, skipped: [] };
    const lock = await this.deps.claims.lock(wanted);
    const skipped = wanted.filter((h) => !lock.hosts.includes(h));
    try {
      if (lock.hosts.length === 0) return { run: null, skipped };
      const epochs = await this.deps.work.nextEpochs(lock.hosts);
      const claims = lock.hosts.map((host) => ({
        host,
        gen: 0,
        epoch: epochs.get(host) ?? 0,
        attempts: 0,
        converging: false,
      }));
      const { done } = await this.startRun(claims, true);
      const run = await done;
      // The rows say these hosts hold their objects; they no longer do: the next start-up
      // (of this or any replica) applies them again.
      await this.deps.work.markDue(lock.hosts);
      return { run, skipped };
    } finally {
      await lock.release();
    }
  }

  /** Stops claiming; the runs going on end (the runs service bounds them). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Resolves once the runs in flight at stop() have been settled. */
  async drained(): Promise<void> {
    await this.pumping;
    await Promise.allSettled([...this.running]);
    this.notifyWaiters();
  }

  /** Hosts this process holds now (tests, readiness). */
  get heldHosts(): string[] {
    return this.phases.hosts;
  }
}
