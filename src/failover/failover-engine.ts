import type { InventorySource } from '../hosts/inventory-source.ts';
import type { InventoryHost } from '../hosts/inventory.ts';
import type { Logger } from '../logger.ts';
import type { WatchLeases } from '../live/watch-leases.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { probeConnection } from './probe/probe-connection.ts';
import type { FailoverOutcome, RoutesStore } from '../routes/routes-store.ts';
import { isDegraded, type GatewayHealth, type HealthCheck, type Route } from '../routes/types.ts';
import { decide, type Decision } from './failover-decision.ts';
import { combinedHealth, HealthTracker, type ProbeOutcome } from './health-tracker.ts';
import type { ProbeCheck } from './probe/probe-session.ts';

/** The checking point of hosts routeplane cannot watch: the controller itself. */
export const CONTROLLER_POINT = '@controller';

/** Leases are renewed (and the check set re-read) this often. */
const REFRESH_MS = 5_000;
export const PROBE_LEASE_TTL_MS = 15_000;
/** Route changes within this window are read as one refresh. */
const CHANGE_DEBOUNCE_MS = 100;
/**
 * A managed gateway whose table (with its check accepts) is not applied yet: failures towards
 * it are held back, re-read this often, for a probe in flight this long after, and for at most
 * ACCEPT_GRACE_MS after its check first appeared (a gateway whose apply keeps failing is down).
 */
const AWAITING_REFRESH_MS = 1_000;
const AWAITING_TAIL_MS = 2_000;
const ACCEPT_GRACE_MS = 30_000;
/** A decision whose transaction failed is tried again this soon. */
const DECIDE_RETRY_MS = 1_000;
/**
 * The most probes one point runs: a fleet's worth of gateways and checks, well under what
 * one prober holds (its file descriptors); routes past it are checked by nobody, and say so.
 */
export const MAX_PROBES_PER_POINT = 512;

/** What the engine needs of the probers (host-probers.ts). */
export interface Probers {
  set(points: { point: string; host: InventoryHost | null; checks: ProbeCheck[] }[]): Promise<void>;
  stop(): Promise<void>;
}

export interface ProbeReport {
  point: string;
  id: string;
  at: Date;
  outcome: ProbeOutcome;
  detail: string | null;
}

/** One failover decision recorded, as the feeds and metrics are told of it. */
export interface FailoverEvent {
  route: Route;
  point: string;
  outcome: FailoverOutcome;
}

/** The probe of one check of one gateway: shared by every route of a point that asks it. */
export const probeId = (c: HealthCheck, target: string) =>
  `${c.type}:${c.port ?? ''}:${c.intervalS}:${c.timeoutS}@${target}`;

/** Rise and fall are counted per route policy, so they are part of the tracked key. */
const trackKey = (point: string, c: HealthCheck, target: string) =>
  `${point}|${probeId(c, target)}|${c.rise}|${c.fall}`;

/**
 * Route failover: which checks each checking point runs (the route's own host, or the
 * controller for a host that cannot be watched), what their results say of each gateway
 * (rise/fall per check), and the decisions that follow, recorded with the host work they owe
 * in one transaction per point (routes-store.ts recordFailover). Decisions are taken only by
 * the replica holding the point's probe lease.
 */
export class FailoverEngine {
  private readonly tracker = new HealthTracker();
  /** The candidate routes of each point this replica holds, as last read or written. */
  private routesByPoint = new Map<string, Map<string, Route>>();
  /** Tracked checks by probe id per point: who to tell of a result. */
  private listeners = new Map<string, Map<string, HealthCheck[]>>();
  private readonly recheck = new Map<string, NodeJS.Timeout>();
  private readonly retries = new Map<string, NodeJS.Timeout>();
  private readonly evaluating = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
  private refreshTimer: NodeJS.Timeout | null = null;
  private changeTimer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> = Promise.resolve();
  private refreshQueued = false;
  private stopped = false;
  private readonly eventListeners: ((events: FailoverEvent[]) => void)[] = [];
  /** Per gateway address: until when its failed checks are held back (awaitingAccepts). */
  private awaitingUntil = new Map<string, number>();
  /** When each point first checked each gateway: the grace for its accepts runs from then. */
  private readonly firstSeen = new Map<string, number>();
  private awaitingTimer: NodeJS.Timeout | null = null;
  /** Routes whose decisions are being recorded now (their change is no news to the engine). */
  private readonly recording = new Set<string>();
  /** Routes changed since the last look (coalesced for CHANGE_DEBOUNCE_MS). */
  private readonly changed = new Set<string>();

  constructor(
    private readonly deps: {
      store: RoutesStore;
      inventory: InventorySource;
      leases: WatchLeases;
      probers: Probers;
      logger: Logger;
      /** The runner's SSH masters (where a point's session rides), as the watcher uses. */
      mastersDir?: string;
      /** Candidate addresses whose firewall does not accept the checks yet (failover-checks.ts). */
      awaitingAccepts?: (routes: Route[]) => Promise<Set<string>>;
      metrics?: Metrics;
      now?: () => Date;
    },
  ) {}

  /** Told of every decision recorded (events, switches), after its commit. */
  onEvents(fn: (events: FailoverEvent[]) => void): void {
    this.eventListeners.push(fn);
  }

  async start(): Promise<void> {
    await this.refresh();
    this.refreshTimer = setInterval(() => void this.refresh(), REFRESH_MS);
    this.refreshTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.changeTimer) clearTimeout(this.changeTimer);
    if (this.awaitingTimer) clearTimeout(this.awaitingTimer);
    for (const t of [...this.recheck.values(), ...this.retries.values()]) clearTimeout(t);
    this.recheck.clear();
    await this.refreshing;
    await Promise.all(this.evaluating.values());
    await this.deps.probers.stop();
    await this.deps.leases.release([...this.routesByPoint.keys()]).catch(() => undefined);
  }

  /**
   * Routes changed (written by the API, the scheduler or a run): read the check set again.
   * The engine's own decisions are left out: its map already holds what it wrote.
   */
  routesChanged(ids: string[]): void {
    if (this.stopped) return;
    for (const id of ids) if (!this.recording.has(id)) this.changed.add(id);
    if (this.changed.size === 0) return;
    this.changeTimer ??= setTimeout(() => {
      this.changeTimer = null;
      const batch = [...this.changed];
      this.changed.clear();
      void this.refreshIfCandidates(batch);
    }, CHANGE_DEBOUNCE_MS);
  }

  /**
   * A refresh when a changed route is one the engine checks, or is a candidate route now: the
   * writes of plain routes (and every apply's sync states) cost one indexed read, not a refresh.
   */
  private async refreshIfCandidates(ids: string[]): Promise<void> {
    const known = new Set([...this.routesByPoint.values()].flatMap((m) => [...m.keys()]));
    try {
      if (ids.some((id) => known.has(id)) || (await this.deps.store.anyCandidate(ids))) {
        await this.refresh();
      }
    } catch (err) {
      this.deps.logger.warn({ event: 'failover.refresh_failed', err }, 'could not refresh checks');
    }
  }

  /** A probe's result from a point's prober. */
  observe(r: ProbeReport): void {
    const checks = this.listeners.get(r.point)?.get(r.id);
    if (!checks) return;
    this.deps.metrics?.probeResults.inc({ check: checks[0]!.type, outcome: r.outcome });
    let moved = false;
    const target = r.id.slice(r.id.indexOf('@') + 1);
    if (r.outcome === 'fail' && this.heldBack(r.point, target, r.at)) return;
    for (const c of checks) {
      const t = this.tracker.observe(trackKey(r.point, c, target), c, r.outcome, r.at, r.detail);
      if (t) {
        moved = true;
        this.deps.logger.info(
          {
            event: 'failover.check_health',
            point: r.point,
            gateway: target,
            check: c.type,
            from: t.from,
            to: t.to,
            detail: t.detail,
          },
          'gateway check changed health',
        );
      }
    }
    if (moved) this.evaluate(r.point);
  }

  /**
   * Whether a failure towards `gateway` is held back: its managed firewall may not accept the
   * checks yet (a new route's accepts ride the gateway's next apply, after the checks start).
   */
  private heldBack(point: string, gateway: string, at: Date): boolean {
    const until = this.awaitingUntil.get(gateway);
    if (until === undefined || at.getTime() >= until) return false;
    const first = this.firstSeen.get(`${point}|${gateway}`) ?? at.getTime();
    return at.getTime() - first < ACCEPT_GRACE_MS;
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /**
   * What `point` sees of each of the route's candidates, all its checks combined. A gateway its
   * checks have not decided on yet (since this process started, or since its checks changed)
   * is left out: the decision keeps the health the route last recorded for it.
   */
  private seen(point: string, route: Route): Record<string, GatewayHealth> {
    const policy = route.failover!;
    const out: Record<string, GatewayHealth> = {};
    for (const via of policy.candidates) {
      const target = targetOf(route, via);
      const h = combinedHealth(
        policy.healthCheck.map((c) => this.tracker.health(trackKey(point, c, target))),
      );
      if (h !== 'unknown') out[via] = h;
    }
    return out;
  }

  private failingDetail(point: string, route: Route, via: string): string | null {
    for (const c of route.failover!.healthCheck) {
      const d = this.tracker.detail(trackKey(point, c, targetOf(route, via)));
      if (d) return `${c.type}${c.port ? `/${c.port}` : ''}: ${d}`;
    }
    return null;
  }

  /**
   * The decision for one route: what to record (null when nothing changes) and when to decide
   * again though nothing is observed (a return waiting for its hold-down).
   */
  private decideFor(
    point: string,
    route: Route,
    now: Date,
  ): { outcome: FailoverOutcome | null; recheckAt: Date | null } {
    if (!route.failover || !route.failoverState) return { outcome: null, recheckAt: null };
    const d: Decision = decide(route.failover, route.failoverState, this.seen(point, route), now);
    // Degraded follows from the gateways in use and their health: nothing else to compare.
    if (!d.switched && d.healthChanges.length === 0) {
      return { outcome: null, recheckAt: d.recheckAt };
    }
    const events: FailoverOutcome['events'] = d.healthChanges.map((h) => ({
      action: 'gateway_health',
      detail: {
        gateway: h.via,
        from: h.from,
        to: h.to,
        checking_point: point,
        error: h.to === 'unhealthy' ? this.failingDetail(point, route, h.via) : null,
      },
    }));
    if (d.switched) {
      events.push({
        action: 'failover',
        detail: { from: d.switched.from, to: d.switched.to, reason: d.switched.reason },
      });
    }
    return { outcome: { state: d.state, switched: d.switched, events }, recheckAt: d.recheckAt };
  }

  /** Decides for every route of a point, one evaluation at a time per point. */
  private evaluate(point: string): void {
    const running = this.evaluating.get(point);
    if (running) {
      this.dirty.add(point);
      return;
    }
    const run = this.evaluateNow(point)
      .catch((err: unknown) => {
        // Nothing else would decide again while the health stays as it is: retried, so a
        // route is never left on a failed gateway by one lost transaction.
        this.deps.logger.warn({ event: 'failover.decide_failed', point, err }, 'decision failed');
        this.retryLater(point);
      })
      .finally(() => {
        this.evaluating.delete(point);
        if (this.dirty.delete(point)) this.evaluate(point);
      });
    this.evaluating.set(point, run);
  }

  private async evaluateNow(point: string): Promise<void> {
    const routes = this.routesByPoint.get(point);
    if (!routes || this.stopped) return;
    const now = this.now();
    const held = () => this.routesByPoint.get(point);
    // Decided first on the routes as last read: only those that would change are locked and
    // decided again in the transaction; the others say when to decide again.
    const ids: string[] = [];
    const rechecks: (Date | null)[] = [];
    for (const r of routes.values()) {
      const { outcome, recheckAt } = this.decideFor(point, r, now);
      if (outcome) ids.push(r.id);
      else rechecks.push(recheckAt);
    }
    if (ids.length > 0) {
      ids.forEach((id) => this.recording.add(id));
      const recorded = await this.deps.store
        .recordFailover(
          ids,
          (r) => {
            const { outcome, recheckAt } = this.decideFor(point, r, now);
            rechecks.push(recheckAt);
            return outcome;
          },
          (trx) => this.deps.leases.holds(point, trx),
        )
        .finally(() => ids.forEach((id) => this.recording.delete(id)));
      for (const { route, outcome } of recorded) {
        // The map as it is now: a refresh may have replaced it while this one was recorded.
        held()?.set(route.id, route);
        if (outcome.switched) {
          this.deps.logger.info(
            {
              event: 'failover.switch',
              point,
              route_id: route.id,
              host: route.host,
              to_prefix: route.to,
              from: outcome.switched.from,
              to: outcome.switched.to,
              reason: outcome.switched.reason,
            },
            'route switched gateways',
          );
        }
      }
      if (recorded.length > 0) {
        const events = recorded.map((r) => ({ ...r, point }));
        this.count(events);
        for (const fn of this.eventListeners) fn(events);
      }
    }
    this.scheduleRecheck(point, now, rechecks);
  }

  private count(events: FailoverEvent[]): void {
    const m = this.deps.metrics;
    if (!m) return;
    for (const { outcome } of events) {
      if (outcome.switched) m.failoverSwitches.inc({ reason: outcome.switched.reason });
      for (const e of outcome.events) {
        if (e.action === 'gateway_health')
          m.gatewayHealthChanges.inc({ health: String(e.detail.to) });
      }
    }
    m.degradedRoutes.set(this.degradedCount());
  }

  /** Candidate routes of the points this replica holds that are degraded. */
  degradedCount(): number {
    let n = 0;
    for (const routes of this.routesByPoint.values()) {
      for (const r of routes.values()) if (r.failoverState && isDegraded(r.failoverState)) n++;
    }
    return n;
  }

  private retryLater(point: string): void {
    if (this.stopped || this.retries.has(point)) return;
    const t = setTimeout(() => {
      this.retries.delete(point);
      this.evaluate(point);
    }, DECIDE_RETRY_MS);
    t.unref();
    this.retries.set(point, t);
  }

  /** A return waiting for its hold-down is decided again when it ends. */
  private scheduleRecheck(point: string, now: Date, rechecks: (Date | null)[]): void {
    const old = this.recheck.get(point);
    if (old) clearTimeout(old);
    this.recheck.delete(point);
    const times = rechecks.filter((d): d is Date => d !== null).map((d) => d.getTime());
    if (times.length === 0 || this.stopped) return;
    const next = Math.min(...times);
    const t = setTimeout(() => this.evaluate(point), Math.max(0, next - now.getTime()) + 5);
    t.unref();
    this.recheck.set(point, t);
  }

  /** Which gateways' accepts are not applied yet; re-read soon while there are any. */
  private async noteAwaiting(routes: Route[]): Promise<void> {
    const now = this.now().getTime();
    const known = new Set<string>();
    for (const [p, mine] of this.routesByPoint) {
      for (const r of mine.values())
        for (const via of r.failover!.candidates) known.add(`${p}|${via}`);
    }
    for (const k of known) if (!this.firstSeen.has(k)) this.firstSeen.set(k, now);
    for (const k of this.firstSeen.keys()) if (!known.has(k)) this.firstSeen.delete(k);
    const awaiting = (await this.deps.awaitingAccepts?.(routes)) ?? new Set<string>();
    for (const via of awaiting) this.awaitingUntil.set(via, now + AWAITING_TAIL_MS);
    for (const [via, until] of this.awaitingUntil) if (until <= now) this.awaitingUntil.delete(via);
    if (awaiting.size > 0 && !this.awaitingTimer && !this.stopped) {
      this.awaitingTimer = setTimeout(() => {
        this.awaitingTimer = null;
        void this.refresh();
      }, AWAITING_REFRESH_MS);
      this.awaitingTimer.unref();
    }
  }

  /**
   * Reads the candidate routes, takes the leases of their points, and gives each held point's
   * prober its checks. Serialised: one refresh at a time.
   */
  refresh(): Promise<void> {
    // One refresh waiting behind the running one is enough: it reads everything anyway.
    if (this.refreshQueued) return this.refreshing;
    this.refreshQueued = true;
    this.refreshing = this.refreshing
      .then(() => {
        this.refreshQueued = false;
        return this.refreshNow();
      })
      .catch((err: unknown) => {
        this.deps.logger.warn(
          { event: 'failover.refresh_failed', err },
          'could not refresh checks',
        );
      });
    return this.refreshing;
  }

  private async refreshNow(): Promise<void> {
    if (this.stopped) return;
    const [routes, inv] = await Promise.all([
      this.deps.store.candidateRoutes(),
      this.deps.inventory.current(),
    ]);
    const pointOf = new Map<string, string>();
    const point = (host: string) => {
      let p = pointOf.get(host);
      if (p === undefined) {
        const h = inv.hosts.get(host);
        const watched = h && probeConnection(h, { mastersDir: this.deps.mastersDir }).watched;
        p = watched ? host : CONTROLLER_POINT;
        pointOf.set(host, p);
      }
      return p;
    };
    const byPoint = new Map<string, Map<string, Route>>();
    for (const r of routes) {
      const p = point(r.host);
      let m = byPoint.get(p);
      if (!m) byPoint.set(p, (m = new Map()));
      m.set(r.id, r);
    }
    const held = await this.deps.leases.claim([...byPoint.keys()]);
    const released = [...this.routesByPoint.keys()].filter((p) => !byPoint.has(p));
    await this.deps.leases.release(released);
    this.routesByPoint = new Map([...byPoint].filter(([p]) => held.has(p)));
    const listeners = new Map<string, Map<string, HealthCheck[]>>();
    const tracked = new Set<string>();
    const points: { point: string; host: InventoryHost | null; checks: ProbeCheck[] }[] = [];
    const skipped = new Set<string>();
    for (const [p, mine] of this.routesByPoint) {
      const byId = new Map<string, HealthCheck[]>();
      const checks = new Map<string, ProbeCheck>();
      for (const r of mine.values()) {
        for (const via of r.failover!.candidates) {
          for (const c of r.failover!.healthCheck) {
            const target = targetOf(r, via);
            const id = probeId(c, target);
            if (!checks.has(id) && checks.size >= MAX_PROBES_PER_POINT) {
              skipped.add(r.id);
              continue;
            }
            const key = trackKey(p, c, target);
            if (!tracked.has(key)) {
              tracked.add(key);
              byId.set(id, [...(byId.get(id) ?? []), c]);
            }
            checks.set(id, {
              id,
              type: c.type,
              target,
              port: c.port,
              intervalS: c.intervalS,
              timeoutS: c.timeoutS,
            });
          }
        }
      }
      listeners.set(p, byId);
      points.push({
        point: p,
        host: p === CONTROLLER_POINT ? null : (inv.hosts.get(p) ?? null),
        checks: [...checks.values()],
      });
    }
    if (skipped.size > 0) {
      this.deps.logger.warn(
        { event: 'failover.too_many_probes', routes: skipped.size, max: MAX_PROBES_PER_POINT },
        'a checking point has more distinct checks than it runs; some gateways go unchecked',
      );
    }
    this.listeners = listeners;
    this.tracker.retain(tracked);
    await this.noteAwaiting([...this.routesByPoint.values()].flatMap((m) => [...m.values()]));
    await this.deps.probers.set(points);
    // Every point is decided again on what is known (pure, and a write only when something
    // would change): a new or changed route at once, and anything a failed transaction or a
    // lost notification left undecided.
    for (const p of this.routesByPoint.keys()) this.evaluate(p);
  }
}

/**
 * What a probe of `via` is sent to: an IPv6 link-local gateway only means something on the
 * route's device (the kernel refuses it without a scope).
 */
export function targetOf(route: Pick<Route, 'dev'>, via: string): string {
  return route.dev && /^fe[89ab][0-9a-f]:/i.test(via) ? `${via}%${route.dev}` : via;
}
