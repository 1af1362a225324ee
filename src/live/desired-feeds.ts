import type { Logger } from '../logger.ts';
import { presentRule } from '../firewall/firewall-presenter.ts';
import type { FirewallStore } from '../firewall/firewall-store.ts';
import { presentFailover, presentRoute } from '../routes/routes-presenter.ts';
import type { Route } from '../routes/types.ts';
import type { RoutesStore } from '../routes/routes-store.ts';
import { presentRun } from '../runs/runs-presenter.ts';
import type { RunsStore } from '../runs/runs-store.ts';
import type { Run, RunProgress } from '../runs/types.ts';
import type { Objects, TopicLog } from './topic-log.ts';

export const ROUTES_TOPIC = 'routes';
export const FIREWALL_TOPIC = 'firewall';
export const RUNS_TOPIC = 'runs';
export const FAILOVER_TOPIC = 'failover';
export const runTopic = (id: string) => `runs/${id}`;

/** Runs the `runs` topic shows: the latest, newest first. */
const RECENT_RUNS = 50;
/** Changes within this window go out as one message per topic (a write of 1,000 routes). */
const COALESCE_MS = 50;
/** A finished run's topic is forgotten after this (a later subscriber gets it re-seeded). */
const RUN_TOPIC_KEEP_MS = 3_600_000;
/** The statuses the `routes` and `firewall` topics show (as GET /v1/routes lists them). */
const LIVE = new Set(['pending', 'active', 'paused']);

interface HostProgress {
  host: string;
  ok: number;
  changed: number;
  failed: number;
  unreachable: number;
  skipped: number;
  last_task: string | null;
}

/**
 * The `routes`, `firewall` and `runs` topics, and each run's own: what the database says,
 * re-read for exactly the objects whose rows changed (the stores say which, once committed)
 * and published as diffs; an object no longer live (expired, deleted) leaves its topic. A
 * write to one route of a host with 20,000 costs one row, not the host's whole table.
 */
export class DesiredFeeds {
  private readonly dirtyRoutes = new Set<string>();
  private readonly dirtyRules = new Set<string>();
  /** Runs whose state changed since the last flush, as last told. */
  private readonly dirtyRuns = new Map<string, Run>();
  private runsDirty = false;
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  /** Progress of the runs this process executes, by run id. */
  private readonly progress = new Map<
    string,
    {
      hosts: Map<string, HostProgress>;
      events: Record<string, unknown>[];
      started: Set<string>;
      timer: NodeJS.Timeout | null;
    }
  >();
  private readonly finishedRuns = new Map<string, number>();
  /** Route ids the `failover` topic shows: only their changes (or removal) are written to it. */
  private readonly candidateIds = new Set<string>();

  constructor(
    private readonly log: TopicLog,
    private readonly routes: RoutesStore,
    private readonly firewall: FirewallStore,
    private readonly runs: RunsStore,
    private readonly logger: Logger,
  ) {}

  /** These routes' rows changed (lifecycle, schedule, sync state). */
  routesChanged(ids: Iterable<string>): void {
    for (const id of ids) this.dirtyRoutes.add(id);
    this.schedule();
  }

  /** These firewall rules' rows changed. */
  rulesChanged(ids: Iterable<string>): void {
    for (const id of ids) this.dirtyRules.add(id);
    this.schedule();
  }

  /**
   * A run was queued, started or ended: published with the next flush (coalesced, so the
   * settle of the run and the answer waiting on it never queue behind topic writes).
   */
  runChanged(run: Run): void {
    this.runsDirty = true;
    this.dirtyRuns.set(run.id, run);
    if (run.finishedAt) this.finishedRuns.set(run.id, Date.now());
    this.schedule();
  }

  /** A step of a run this process executes: counted per host and streamed as an event. */
  runProgress(run: Run, p: RunProgress): void {
    let state = this.progress.get(run.id);
    if (!state) {
      state = { hosts: new Map(), events: [], started: new Set(), timer: null };
      this.progress.set(run.id, state);
    }
    // A free-strategy play starts each task once per host: the stream says so once.
    if (p.kind === 'task_started') {
      if (state.started.has(p.task)) return;
      state.started.add(p.task);
    }
    state.events.push({ ...p });
    if (p.kind === 'host_result') {
      let h = state.hosts.get(p.host);
      if (!h) {
        h = {
          host: p.host,
          ok: 0,
          changed: 0,
          failed: 0,
          unreachable: 0,
          skipped: 0,
          last_task: null,
        };
        state.hosts.set(p.host, h);
      }
      h[p.status === 'changed' ? 'changed' : p.status] += 1;
      h.last_task = p.task;
    }
    state.timer ??= setTimeout(() => this.flushProgress(run.id), COALESCE_MS);
  }

  /**
   * Every live route and rule, and the latest runs, at start-up: the topics are made whole
   * (what changed while no replica ran, or before live state existed, is published once).
   */
  async seed(): Promise<void> {
    const [routes, rules] = await Promise.all([this.routes.live(), this.firewall.live()]);
    await this.log.publish(ROUTES_TOPIC, { scope: '', objects: keyed(routes, presentRoute) });
    const candidates = routes.filter((r) => r.failover);
    candidates.forEach((r) => this.candidateIds.add(r.id));
    await this.log.publish(FAILOVER_TOPIC, {
      scope: '',
      objects: keyed(candidates, presentFailoverRoute),
    });
    await this.log.publish(FIREWALL_TOPIC, { scope: '', objects: keyed(rules, presentRule) });
    this.runsDirty = true;
    await this.flush();
  }

  /** A run's topic, for its first subscriber: the run as it stands. */
  async seedRun(id: string): Promise<boolean> {
    const run = await this.runs.get(id);
    if (!run) return false;
    if (!(await this.log.exists(runTopic(id)))) {
      await this.log.publish(runTopic(id), { objects: { run: presentRun(run, false) } });
    }
    return true;
  }

  /** Forgets the topics of runs finished long ago. */
  async prune(): Promise<void> {
    const before = Date.now() - RUN_TOPIC_KEEP_MS;
    const old = [...this.finishedRuns].filter(([, at]) => at < before).map(([id]) => id);
    await this.log.forget(old.map(runTopic));
    old.forEach((id) => this.finishedRuns.delete(id));
  }

  /** Resolves once everything changed so far is published (tests, shutdown). */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.flushing = this.flushing.then(() => this.publishDirty());
    await this.flushing;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const p of this.progress.values()) if (p.timer) clearTimeout(p.timer);
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => void this.flush(), COALESCE_MS);
  }

  private async publishDirty(): Promise<void> {
    const routeIds = [...this.dirtyRoutes];
    const ruleIds = [...this.dirtyRules];
    this.dirtyRoutes.clear();
    this.dirtyRules.clear();
    const runsDirty = this.runsDirty;
    this.runsDirty = false;
    const runs = [...this.dirtyRuns.values()];
    this.dirtyRuns.clear();
    try {
      for (const run of runs) {
        await this.log.publish(runTopic(run.id), { objects: { run: presentRun(run, false) } });
        if (run.finishedAt) {
          this.flushProgress(run.id);
          this.progress.delete(run.id);
        }
      }
      if (routeIds.length > 0) {
        const live = (await this.routes.getMany(routeIds)).filter((r) => LIVE.has(r.status));
        await this.log.publish(ROUTES_TOPIC, {
          objects: keyed(live, presentRoute),
          remove: routeIds,
        });
        await this.publishFailover(routeIds, live);
      }
      if (ruleIds.length > 0) {
        const live = (await this.firewall.getMany(ruleIds)).filter((r) => LIVE.has(r.status));
        await this.log.publish(FIREWALL_TOPIC, {
          objects: keyed(live, presentRule),
          remove: ruleIds,
        });
      }
      if (runsDirty) {
        const { items } = await this.runs.list({ limit: RECENT_RUNS, offset: 0 });
        const objects: Objects = {};
        for (const run of items) objects[run.id] = presentRun(run, false);
        await this.log.publish(RUNS_TOPIC, { scope: '', objects });
      }
    } catch (err) {
      this.failed(err);
    }
  }

  /** The `failover` topic: each candidate route's gateways, health and last switch. */
  private async publishFailover(ids: string[], live: Route[]): Promise<void> {
    const candidates = live.filter((r) => r.failover);
    const gone = ids.filter(
      (id) => this.candidateIds.has(id) && !candidates.some((r) => r.id === id),
    );
    if (candidates.length === 0 && gone.length === 0) return;
    candidates.forEach((r) => this.candidateIds.add(r.id));
    gone.forEach((id) => this.candidateIds.delete(id));
    await this.log.publish(FAILOVER_TOPIC, {
      objects: keyed(candidates, presentFailoverRoute),
      remove: gone,
    });
  }

  /** Switches and health changes as they are decided, as events of the `failover` topic. */
  failoverEvents(events: Record<string, unknown>[]): void {
    if (events.length === 0) return;
    void this.log.write(FAILOVER_TOPIC, { events }).catch((err: unknown) => this.failed(err));
  }

  private flushProgress(id: string): void {
    const state = this.progress.get(id);
    if (!state) return;
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
    const events = state.events.splice(0);
    const objects: Objects = {};
    for (const h of state.hosts.values()) objects[`host/${h.host}`] = { ...h };
    if (events.length === 0 && state.hosts.size === 0) return;
    void this.log
      .write(runTopic(id), { update: { objects }, events })
      .catch((err: unknown) => this.failed(err));
  }

  private failed(err: unknown): void {
    this.logger.warn({ event: 'live.publish_failed', err }, 'could not publish live state');
  }
}

/** Objects presented and keyed by id. */
function keyed<T extends { id: string }>(items: T[], present: (x: T) => unknown): Objects {
  const out: Objects = {};
  for (const x of items) out[x.id] = present(x);
  return out;
}

/** A candidate route as the `failover` topic shows it. */
function presentFailoverRoute(r: Route) {
  return { id: r.id, host: r.host, to: r.to, ...presentFailover(r.failover!, r.failoverState!) };
}
