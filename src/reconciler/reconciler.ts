import type { Actor } from '../auth/roles.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { RoutesStore } from '../routes/routes-store.ts';
import type { RunsService } from '../runs/runs-service.ts';
import type { Run } from '../runs/types.ts';
import { moduleRoute, syncFromRun } from './apply-results.ts';
import { backoffMs } from './backoff.ts';
import type { HostLocks } from './host-locks.ts';

const SYSTEM: Actor = { name: 'reconciler', role: 'admin' };
/** How soon to try again a host whose lock another routeplane process holds. */
const LOCKED_RETRY_MS = 250;
/**
 * Group commit across hosts: hosts that turn dirty while an apply run is going wait for it to
 * end, up to this long (about one run), and then share one run. Without it, a bulk of writes
 * for many hosts (20 POSTs of 1,000 routes, committed one after another) started a run per
 * write, each paying ansible-playbook's start-up (12 runs instead of 2-4 in bench/routes-bulk).
 * The bound keeps a slow run (an unreachable host) from holding other hosts back for long.
 */
const GATHER_MS = 2_000;
/** How long an answer given before its run ended waits for that run to exist, to name it. */
const RUN_ID_WAIT_MS = 2_000;

type ReconcilerConfig = Pick<
  Config,
  'playbooksDir' | 'routeProto' | 'reconcileRetryBaseMs' | 'reconcileRetryMaxMs'
>;

/** A write's place in the queue: the per-host generation its change was given. */
export type Ticket = Map<string, number>;

export interface Settlement {
  /** Whether every host of the ticket ran a run that carried the change. */
  settled: boolean;
  /** The runs that carried (or will carry) the change, when known. */
  runIds: string[];
}

interface Waiter {
  ready(): boolean;
  resolve(): void;
}

/**
 * Makes hosts' kernels match the database. Writes mark hosts dirty; one run applies every
 * dirty host that is not already being applied, and whatever arrives during a run goes into
 * the next one (group commit). Each host carries a generation counter: a write takes the next
 * one, and a run that read the database after that generation was issued settles it.
 */
export class Reconciler {
  private readonly dirty = new Set<string>();
  private readonly inFlight = new Map<string, string | null>();
  /** When each dirty host was marked (the first mark since its last run). */
  private readonly dirtySince = new Map<string, number>();
  /** Apply runs (pump passes holding hosts) going now. */
  private going = 0;
  private readonly issued = new Map<string, number>();
  private readonly applied = new Map<string, number>();
  private readonly carrying = new Map<string, { gen: number; runId: string }>();
  private readonly attempts = new Map<string, number>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  private waiters: Waiter[] = [];
  private pumpQueued = false;
  private lockedTimer: NodeJS.Timeout | null = null;
  private readonly running = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly config: ReconcilerConfig,
    private readonly store: RoutesStore,
    private readonly runs: RunsService,
    private readonly locks: HostLocks,
    private readonly logger: Logger,
    /** Each host's management address, which its apply module must never route away. */
    private readonly managementAddresses: (
      hosts: string[],
    ) => Promise<Record<string, string>> = () => Promise.resolve({}),
  ) {}

  /** Queues the hosts for an apply run and returns the ticket to wait on. */
  markDirty(hosts: Iterable<string>): Ticket {
    const ticket: Ticket = new Map();
    for (const h of hosts) {
      const gen = (this.issued.get(h) ?? 0) + 1;
      this.issued.set(h, gen);
      ticket.set(h, gen);
      this.dirty.add(h);
      if (!this.dirtySince.has(h)) this.dirtySince.set(h, Date.now());
      // A new change gets a fresh attempt now, not at the end of a failed host's backoff.
      this.clearRetry(h);
    }
    if (ticket.size > 0) this.schedulePump();
    return ticket;
  }

  private isSettled(ticket: Ticket): boolean {
    for (const [h, gen] of ticket) if ((this.applied.get(h) ?? 0) < gen) return false;
    return true;
  }

  /** Whether a run carrying the ticket's changes has started (and so has an id). */
  private isCarried(ticket: Ticket): boolean {
    for (const [h, gen] of ticket) if ((this.carrying.get(h)?.gen ?? 0) < gen) return false;
    return true;
  }

  private async until(ready: () => boolean, ms: number): Promise<void> {
    if (ready() || ms <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.waiters.push({ ready, resolve })),
      new Promise<void>((r) => (timer = setTimeout(r, ms))),
    ]);
    clearTimeout(timer);
  }

  /** Waits until runs carrying the ticket's changes have ended, at most `ms`. */
  async waitFor(ticket: Ticket, ms: number): Promise<Settlement> {
    await this.until(() => this.isSettled(ticket), ms);
    // Answering before the run ends (wait=0 too): the answer names the run, so let a run that
    // is about to start (pump is deferred to setImmediate) get its id first.
    await this.until(() => this.isSettled(ticket) || this.isCarried(ticket), RUN_ID_WAIT_MS);
    const runIds = new Set<string>();
    for (const [h, gen] of ticket) {
      const c = this.carrying.get(h);
      if (c && c.gen >= gen) runIds.add(c.runId);
      else if (this.inFlight.get(h)) runIds.add(this.inFlight.get(h)!);
    }
    return { settled: this.isSettled(ticket), runIds: [...runIds] };
  }

  private schedulePump(delayMs = 0): void {
    if (this.stopped) return;
    if (delayMs > 0) {
      this.lockedTimer ??= setTimeout(() => {
        this.lockedTimer = null;
        this.schedulePump();
      }, delayMs);
      return;
    }
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    // setImmediate: writes committed in the same turn of the event loop share one run.
    setImmediate(() => {
      this.pumpQueued = false;
      const p = this.pump().catch((err) =>
        this.logger.error({ event: 'reconcile.failed', err }, 'reconcile pass failed'),
      );
      this.running.add(p);
      void p.finally(() => this.running.delete(p));
    });
  }

  private async pump(): Promise<void> {
    const ready = [...this.dirty].filter((h) => !this.inFlight.has(h));
    if (ready.length === 0 || this.stopped) return;
    if (this.going > 0) {
      // Group commit: gather behind the run that is going, unless it takes too long.
      const oldest = Math.min(...ready.map((h) => this.dirtySince.get(h) ?? 0));
      const wait = oldest + GATHER_MS - Date.now();
      if (wait > 0) {
        this.schedulePump(wait);
        return;
      }
    }
    for (const h of ready) {
      this.dirty.delete(h);
      this.dirtySince.delete(h);
      this.inFlight.set(h, null);
    }
    this.going++;
    let lease;
    try {
      lease = await this.locks.acquire(ready);
    } catch (err) {
      for (const h of ready) {
        this.inFlight.delete(h);
        this.dirty.add(h);
      }
      this.going--;
      this.logger.warn({ event: 'reconcile.lock_failed', err }, 'could not take host locks');
      this.schedulePump(LOCKED_RETRY_MS * 4);
      return;
    }
    const busy = ready.filter((h) => !lease.hosts.includes(h));
    for (const h of busy) {
      this.inFlight.delete(h);
      this.dirty.add(h);
    }
    if (busy.length > 0) this.schedulePump(LOCKED_RETRY_MS);
    const hosts = lease.hosts;
    try {
      if (hosts.length > 0) await this.apply(hosts);
    } finally {
      await lease.release();
      this.going--;
      for (const h of hosts) this.inFlight.delete(h);
      this.notifyWaiters();
      if (this.dirty.size > 0) this.schedulePump();
    }
  }

  private async apply(hosts: string[]): Promise<void> {
    // Generations first, then the read: every change issued up to here is in what we read.
    const gens = new Map(hosts.map((h) => [h, this.issued.get(h) ?? 0]));
    let run: Run;
    try {
      const [desired, settled] = await Promise.all([
        this.store.desiredFor(hosts),
        this.store.unsyncedIds(hosts),
      ]);
      const started = await this.startApply(
        hosts,
        Object.fromEntries([...desired].map(([h, routes]) => [h, routes.map(moduleRoute)])),
      );
      for (const h of hosts) {
        this.inFlight.set(h, started.run.id);
        this.carrying.set(h, { gen: gens.get(h)!, runId: started.run.id });
      }
      this.notifyWaiters();
      run = await started.done;
      // Every host of the run, also those with no row to settle: a host that failed, or whose
      // kernel kept a route it was told to remove, is retried either way.
      const everyHost = new Map(hosts.map((h) => [h, settled.get(h) ?? []]));
      const results = syncFromRun(run, everyHost, (h) => new Date(Date.now() + this.nextDelay(h)));
      await this.store.recordSync(results.flatMap((r) => r.updates));
      for (const r of results) {
        if (r.hostError) this.scheduleRetry(r.host, r.hostError);
        else if (r.updates.some((u) => u.state === 'failed'))
          this.scheduleRetry(r.host, 'route errors');
        else this.attempts.delete(r.host);
      }
    } catch (err) {
      this.logger.error({ event: 'reconcile.apply_failed', hosts, err }, 'apply could not run');
      for (const h of hosts) this.scheduleRetry(h, (err as Error).message);
    }
    for (const [h, gen] of gens) {
      if ((this.applied.get(h) ?? 0) < gen) this.applied.set(h, gen);
    }
  }

  /** One apply_routes run: each host's kernel is made to hold exactly its desired routes. */
  private async startApply(hosts: string[], desired: Record<string, Record<string, unknown>[]>) {
    const managementAddresses = await this.managementAddresses(hosts);
    return this.runs.start({
      kind: 'apply',
      playbookName: 'apply_routes',
      playbookRoot: this.config.playbooksDir,
      playbookFile: 'apply_routes.yml',
      hosts,
      limit: hosts,
      extravars: {
        routeplane_route_proto: this.config.routeProto,
        routeplane_desired_routes: desired,
        routeplane_management_addresses: managementAddresses,
      },
      actor: SYSTEM,
    });
  }

  private nextDelay(host: string): number {
    return backoffMs(
      this.attempts.get(host) ?? 0,
      this.config.reconcileRetryBaseMs,
      this.config.reconcileRetryMaxMs,
    );
  }

  /** Unreachable or failing hosts are retried forever, backing off up to a cap. */
  private scheduleRetry(host: string, reason: string): void {
    if (this.stopped) return;
    const delay = this.nextDelay(host);
    this.attempts.set(host, (this.attempts.get(host) ?? 0) + 1);
    this.clearRetry(host);
    this.logger.warn(
      { event: 'reconcile.retry_scheduled', host, delay_ms: delay, reason },
      'host will be retried',
    );
    this.retryTimers.set(
      host,
      setTimeout(() => {
        this.retryTimers.delete(host);
        this.markDirty([host]);
      }, delay),
    );
  }

  private clearRetry(host: string): void {
    const t = this.retryTimers.get(host);
    if (t) clearTimeout(t);
    this.retryTimers.delete(host);
  }

  private notifyWaiters(): void {
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.ready()) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  /** Reconciles every host whose kernel may differ from the database (start-up, recovery). */
  async reconcileAll(): Promise<Ticket> {
    return this.markDirty(await this.store.hostsToReconcile());
  }

  /**
   * Removes routeplane's routes from every host that has some, without touching the database:
   * the next start-up puts them back. Hosts whose lock is held (an apply still going, here or
   * in another process) are left alone, so no apply can put routes back behind the removal.
   */
  async removeAllFromHosts(): Promise<{ run: Run | null; skipped: string[] }> {
    const wanted = await this.store.hostsWithActiveRoutes();
    if (wanted.length === 0) return { run: null, skipped: [] };
    const lease = await this.locks.acquire(wanted);
    const skipped = wanted.filter((h) => !lease.hosts.includes(h));
    try {
      if (lease.hosts.length === 0) return { run: null, skipped };
      const hosts = lease.hosts;
      const { done } = await this.startApply(hosts, Object.fromEntries(hosts.map((h) => [h, []])));
      return { run: await done, skipped };
    } finally {
      await lease.release();
    }
  }

  /** Stops starting runs; the current ones go on (the runs service bounds them). */
  stop(): void {
    this.stopped = true;
    for (const h of [...this.retryTimers.keys()]) this.clearRetry(h);
    if (this.lockedTimer) clearTimeout(this.lockedTimer);
  }

  /** Resolves once the runs in flight at stop() have been recorded. */
  async drained(): Promise<void> {
    await Promise.allSettled([...this.running]);
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }

  /** Hosts with changes not yet applied, for readiness and tests. */
  get pendingHosts(): string[] {
    return [...new Set([...this.dirty, ...this.inFlight.keys()])];
  }
}
