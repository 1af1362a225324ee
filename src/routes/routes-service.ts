import { randomUUID } from 'node:crypto';
import type { Actor } from '../auth/roles.ts';
import type { Config } from '../config.ts';
import { ConflictError, ValidationError } from '../http/errors.ts';
import type { InventorySource } from '../hosts/inventory-source.ts';
import type { LockoutGuard } from './lockout-guard.ts';
import type { RouteFollowers } from './route-followers.ts';
import type { Reconciler, Settlement } from '../reconciler/reconciler.ts';
import { LOST, retryLostRaces, won } from '../shared/retry-races.ts';
import { LifecycleActions } from '../lifecycle/lifecycle-actions.ts';
import { checkSchedule, parseAddress, parseSchedule, type RouteInput } from './route-input.ts';
import { kernelMetric } from './kernel-route.ts';
import {
  carriedFailoverState,
  initialFailoverState,
  parseFailover,
  policyInput,
  type FailoverInput,
} from '../failover/failover-input.ts';
import {
  differenceOf,
  identityConflict,
  keyOf,
  uniquePlanned,
  type PlannedRoute,
  planRoutes,
} from './route-plan.ts';
import type { NewRoute, RouteFilter, RoutesStore } from './routes-store.ts';
import {
  REMOVED_STATUSES,
  rescheduledStatus,
  sameForwarding,
  samePolicy,
  scheduledStatus,
  type Route,
  type RouteOpening,
  type RouteSpec,
} from './types.ts';

export type CreateOutcome = 'created' | 'existing' | 'updated';

export interface CreateItem {
  route: Route;
  outcome: CreateOutcome;
}

/** Changes PATCH may make; `null` clears an optional field. */
export interface RoutePatch extends Omit<FailoverInput, 'via'> {
  via?: string | string[] | null;
  dev?: string | null;
  metric?: number;
  create_at?: string | null;
  delete_at?: string | null;
  comment?: string | null;
}

/** The outcome of a write once the kernel has (or has not yet) caught up. */
export interface Applied<T> {
  value: T;
  settlement: Settlement;
}

type ServiceConfig = Pick<Config, 'allowLocalWrites' | 'maxBatchItems'>;

/** Declared routes: creation, lifecycle, and waiting for the kernels to match. */
export class RoutesService {
  private scheduleChanged: () => void = () => undefined;
  private readonly lifecycle: LifecycleActions<Route>;

  constructor(
    private readonly config: ServiceConfig,
    private readonly store: RoutesStore,
    private readonly inventory: InventorySource,
    private readonly reconciler: Reconciler,
    private readonly lockout: LockoutGuard,
  ) {
    this.lifecycle = new LifecycleActions<Route>(store, 'Route', 'route_id');
  }

  /** What follows routes' lifecycles: their firewall openings (route-followers.ts). */
  private followers: RouteFollowers | null = null;

  followWith(followers: RouteFollowers): void {
    this.followers = followers;
  }

  /** What may keep written routes from working (a gateway's firewall; failover-checks.ts). */
  private warn: (routes: Route[]) => Promise<string[]> = async () => [];

  warnWith(fn: (routes: Route[]) => Promise<string[]>): void {
    this.warn = fn;
  }

  /** Warnings for the routes a create wrote (an identical one returned as it was has none). */
  warningsOf(items: CreateItem[]): Promise<string[]> {
    const written = items.filter((i) => i.outcome !== 'existing' && i.route.failover);
    return written.length ? this.warn(written.map((i) => i.route)) : Promise.resolve([]);
  }

  /** The scheduler re-aims its timer when told a schedule changed. */
  onScheduleChange(fn: () => void): void {
    this.scheduleChanged = fn;
  }

  /**
   * Creates routes, or (with `upsert`) moves existing ones with the same identity to the new
   * forwarding and schedule. An identical live route is returned as it is, never duplicated.
   * All or none: one bad item rejects the whole request.
   */
  async create(
    inputs: { input: RouteInput; base: string }[],
    actor: Actor,
    upsert: boolean,
  ): Promise<CreateItem[]> {
    const now = new Date();
    const planned = planRoutes(inputs, await this.inventory.current(), now, this.config);
    await this.lockout.check(planned, actor);
    // Checked before anything is stored: a bad opening rejects the whole request.
    const openings = new Map<string, RouteOpening[]>();
    if (this.followers && planned.some((p) => p.input.allow?.length)) {
      const each = await this.followers.openingsOf(planned);
      planned.forEach((p, i) => each[i] && openings.set(keyOf(p.spec), each[i]));
    }
    const items = await this.createPlanned(
      uniquePlanned(planned, now),
      planned,
      actor,
      upsert,
      now,
      openings,
    );
    if (this.followers) {
      const fresh = items.filter((i) => i.outcome === 'created' && i.route.allow);
      await this.followers.created([...new Set(fresh.map((i) => i.route))], actor);
      for (const i of items.filter((i) => i.outcome === 'updated')) {
        await this.followers.followed(i.route, 'reschedule', actor);
      }
    }
    return items;
  }

  private createPlanned(
    unique: PlannedRoute[],
    planned: PlannedRoute[],
    actor: Actor,
    upsert: boolean,
    now: Date,
    openings: Map<string, RouteOpening[]>,
  ): Promise<CreateItem[]> {
    return retryLostRaces('a route of this request', async () => {
      const items = await this.createOnce(unique, planned, actor, upsert, now, openings);
      return items ? won(items) : LOST;
    });
  }

  /** One try; null when another request created one of these identities meanwhile. */
  private async createOnce(
    unique: PlannedRoute[],
    planned: PlannedRoute[],
    actor: Actor,
    upsert: boolean,
    now: Date,
    openings: Map<string, RouteOpening[]>,
  ): Promise<CreateItem[] | null> {
    const existing = new Map(
      (await this.store.findLive(unique.map((p) => p.spec))).map((r) => [keyOf(r), r]),
    );
    const fresh: NewRoute[] = [];
    const moves: { route: Route; planned: PlannedRoute }[] = [];
    for (const p of unique) {
      const found = existing.get(keyOf(p.spec));
      if (!found) {
        fresh.push({
          id: randomUUID(),
          spec: p.spec,
          schedule: p.schedule,
          comment: p.input.comment ?? null,
          allow: openings.get(keyOf(p.spec)) ?? null,
          failoverState: p.spec.failover ? initialFailoverState(p.spec.failover, now) : null,
          status: scheduledStatus(p.schedule, now),
          actor: actor.name,
        });
        continue;
      }
      const differs = differenceOf(found, p, now);
      if (differs && !upsert) throw identityConflict(found, p, differs, now);
      if (differs) moves.push({ route: found, planned: p });
    }
    let inserted: Route[];
    try {
      inserted = await this.store.insert(fresh);
    } catch (err) {
      // Another request created one of these identities between our read and our insert:
      // answering from the database again is the idempotent outcome.
      if ((err as { code?: string }).code === '23505') return null;
      throw err;
    }
    const updated: Route[] = [];
    for (const m of moves) updated.push(await this.move(m.route, m.planned, actor, now));
    const outcome = new Map<string, CreateItem>();
    for (const r of inserted) outcome.set(keyOf(r), { route: r, outcome: 'created' });
    for (const r of updated) outcome.set(keyOf(r), { route: r, outcome: 'updated' });
    for (const r of existing.values()) {
      if (!outcome.has(keyOf(r))) outcome.set(keyOf(r), { route: r, outcome: 'existing' });
    }
    if (inserted.some((r) => r.createAt || r.deleteAt) || updated.length > 0)
      this.scheduleChanged();
    return planned.map((p) => outcome.get(keyOf(p.spec))!);
  }

  /**
   * Gives a live route the request's forwarding and schedule. The status follows the new
   * schedule as PATCH's does (a route moved without create_at is active now, not left pending
   * with nothing to fire it), except that a paused route stays paused.
   */
  private async move(route: Route, p: PlannedRoute, actor: Actor, now: Date): Promise<Route> {
    let current = route;
    return retryLostRaces(`route ${route.id}`, async (tryNumber) => {
      if (tryNumber > 0) {
        // Its status changed under us (the scheduler fired it, someone paused it): decide again.
        const latest = await this.get(current.id);
        if (REMOVED_STATUSES.includes(latest.status)) {
          throw new ConflictError(
            `Route ${latest.id} was ${latest.status} while this request changed it; send the request again`,
            { field: `${p.base}/to`, route_id: latest.id, current_status: latest.status },
          );
        }
        current = latest;
      }
      const moved = await this.store.change(
        current.id,
        [current.status],
        {
          ...forwardingChange(current, p.spec, now),
          schedule: p.schedule,
          comment: p.input.comment ?? current.comment,
          status: rescheduledStatus(current.status, p.schedule, now),
        },
        actor.name,
        'update',
      );
      return moved ? won(moved) : LOST;
    });
  }

  get(id: string): Promise<Route> {
    return this.lifecycle.get(id);
  }

  list(filter: RouteFilter) {
    return this.store.list(filter);
  }

  history(filter: RouteFilter) {
    return this.store.history(filter);
  }

  async events(id: string) {
    await this.get(id);
    return this.store.events(id);
  }

  async patch(id: string, patch: RoutePatch, actor: Actor): Promise<Route> {
    return retryLostRaces(`route ${id}`, async () => {
      const changed = await this.patchOnce(id, patch, actor);
      return changed ? won(changed) : LOST;
    });
  }

  /** One try; null when the route's status changed between the read and the write. */
  private async patchOnce(id: string, patch: RoutePatch, actor: Actor): Promise<Route | null> {
    const route = await this.liveRoute(id, 'changed');
    const spec: RouteSpec = { ...route, ...patchedGateways(route, patch) };
    if (patch.dev !== undefined) spec.dev = patch.dev;
    // As the kernel stores it: an IPv6 metric 0 is 1024 (routes/kernel-route.ts).
    if (patch.metric !== undefined) spec.metric = kernelMetric(patch.metric, route.family);
    if (!spec.via && !spec.dev) {
      throw ValidationError.field('/body/via', 'at least one of via or dev is required');
    }
    const schedule = parseSchedule(
      {
        create_at: patch.create_at === undefined ? route.createAt?.toISOString() : patch.create_at,
        delete_at: patch.delete_at === undefined ? route.deleteAt?.toISOString() : patch.delete_at,
      },
      '/body',
    );
    const now = new Date();
    const rescheduled = patch.create_at !== undefined || patch.delete_at !== undefined;
    if (rescheduled) checkSchedule(schedule, now, '/body');
    if (spec.metric !== route.metric) {
      const [clash] = await this.store.findLive([spec]);
      if (clash && clash.id !== route.id) {
        throw new ConflictError(
          `metric ${spec.metric} would make this route the same as ${clash.id}`,
          {
            field: '/body/metric',
            route_id: clash.id,
          },
        );
      }
    }
    const status = rescheduled ? rescheduledStatus(route.status, schedule, now) : route.status;
    // Only new forwarding is kernel work: a comment or a schedule alone costs no apply run.
    const forwardingChanged = spec.metric !== route.metric || !sameForwarding(spec, route);
    const changed = await this.store.change(
      id,
      [route.status],
      {
        ...(forwardingChanged ? forwardingChange(route, spec, now) : {}),
        schedule,
        ...(patch.comment !== undefined ? { comment: patch.comment } : {}),
        status,
      },
      actor.name,
      'update',
    );
    if (changed && rescheduled) {
      this.scheduleChanged();
      await this.followers?.followed(changed, 'reschedule', actor);
    }
    return changed;
  }

  delete(id: string, actor: Actor): Promise<Route> {
    return this.perform(id, 'delete', actor);
  }

  pause(id: string, actor: Actor): Promise<Route> {
    return this.perform(id, 'pause', actor);
  }

  resume(id: string, actor: Actor): Promise<Route> {
    return this.perform(id, 'resume', actor);
  }

  private async perform(id: string, action: 'delete' | 'pause' | 'resume', actor: Actor) {
    const route = await this.lifecycle.perform(id, action, actor.name);
    await this.followers?.followed(route, action, actor);
    return route;
  }

  private liveRoute(id: string, verb: string): Promise<Route> {
    return this.lifecycle.live(id, verb);
  }

  /**
   * Waits up to `ms` for the runs carrying these routes' changes to end, then reads the
   * routes again. The writes themselves already recorded the work they owe (routes-store.ts):
   * this only waits, and nothing is lost if the caller never does.
   */
  async waitForKernel(routes: Route[], ms: number): Promise<Applied<Route[]>> {
    const hosts = new Set(routes.filter((r) => r.sync.state === 'applying').map((r) => r.host));
    const settlement = await this.reconciler.waitForKernel(hosts, ms);
    return { value: await this.store.getMany(routes.map((r) => r.id)), settlement };
  }
}

/**
 * A route's gateways after a PATCH: a list of candidates (with the policy fields the patch
 * names, the rest as they were), or one `via`, which ends failover for the route.
 */
function patchedGateways(route: Route, patch: RoutePatch): Pick<RouteSpec, 'via' | 'failover'> {
  const touchesPolicy =
    Array.isArray(patch.via) ||
    (patch.via === undefined &&
      (route.failover !== null ||
        ['health_check', 'mode', 'preempt', 'hold_down_s'].some(
          (f) => patch[f as keyof RoutePatch] !== undefined,
        )));
  if (touchesPolicy) {
    const input: FailoverInput = {
      ...(route.failover ? policyInput(route.failover) : {}),
      ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)),
    };
    const dev = patch.dev === undefined ? route.dev : patch.dev;
    const failover = parseFailover(input, route.family, '/body', parseAddress, dev);
    return { via: failover ? failover.candidates[0]! : route.via, failover };
  }
  if (patch.via === undefined) return { via: route.via, failover: route.failover };
  // One via with policy fields: parseFailover names the field that needs a list.
  parseFailover({ ...patch, via: null }, route.family, '/body', parseAddress);
  return {
    via: patch.via === null ? null : parseAddress(patch.via as string, route.family, '/body/via'),
    failover: null,
  };
}

/**
 * The change a route gets for new forwarding. A candidate route whose policy stays the same
 * keeps its standing and the gateway it uses (the store leaves its `via` as the row has it);
 * new candidates or policy carry over what still applies (failover-input.ts).
 */
function forwardingChange(current: Route, spec: RouteSpec, now: Date) {
  if (samePolicy(current.failover, spec.failover)) return { spec };
  if (!spec.failover) return { spec, failoverState: null };
  const failoverState = carriedFailoverState(
    { policy: current.failover, state: current.failoverState },
    spec.failover,
    now,
  );
  return { spec: { ...spec, via: failoverState.activeVia[0]! }, failoverState };
}
