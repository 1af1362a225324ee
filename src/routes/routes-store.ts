import type { Knex } from 'knex';
import type { HostWorkStore } from '../reconciler/host-work-store.ts';
import { LifecycleTable } from '../lifecycle/lifecycle-table.ts';
import { knexSql } from '../reconciler/sql.ts';
import { Batcher } from '../shared/batcher.ts';
import { keyOf } from './route-plan.ts';
import type {
  FailoverPolicy,
  FailoverState,
  GatewayHealth,
  RouteOpening,
  Route,
  RouteConflict,
  RouteEvent,
  RouteSchedule,
  RouteSpec,
  RouteStatus,
  SyncState,
} from './types.ts';

interface RouteRow {
  id: string;
  host: string;
  destination: string;
  // bigint columns (the kernel's 32-bit unsigned range): node-pg and PGlite may hand int8
  // back as text; fromRow makes them numbers, exact up to 2^53.
  table_id: number | string;
  metric: number | string;
  via: string | null;
  dev: string | null;
  scope: string | null;
  src: string | null;
  onlink: boolean;
  force: boolean;
  create_at: Date | null;
  delete_at: Date | null;
  comment: string | null;
  allow: RouteOpening[] | string | null;
  failover: FailoverPolicy | string | null;
  failover_state: StoredFailoverState | string | null;
  status: RouteStatus;
  sync_state: SyncState;
  sync_error: string | null;
  sync_conflict: RouteConflict | null;
  sync_retry_at: Date | null;
  synced_at: Date | null;
  last_run_id: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  removed_at: Date | null;
  removed_reason: 'expired' | 'deleted' | null;
  removed_by: string | null;
}

const date = (d: Date | string | null) => (d === null ? null : new Date(d));

/** A FailoverState as jsonb holds it: dates as ISO text. */
export interface StoredFailoverState {
  activeVia: string[];
  health: Record<string, { health: GatewayHealth; since: string }>;
  lastSwitch: { at: string; from: string[]; to: string[]; reason: string } | null;
}

const json = <T>(v: T | string | null): T | null =>
  typeof v === 'string' ? (JSON.parse(v) as T) : v;

export function storedFailoverState(s: FailoverState): StoredFailoverState {
  return {
    activeVia: s.activeVia,
    health: Object.fromEntries(
      Object.entries(s.health).map(([a, h]) => [
        a,
        { health: h.health, since: h.since.toISOString() },
      ]),
    ),
    lastSwitch: s.lastSwitch ? { ...s.lastSwitch, at: s.lastSwitch.at.toISOString() } : null,
  };
}

export function failoverStateOf(s: StoredFailoverState | string | null): FailoverState | null {
  const v = json(s);
  if (!v) return null;
  return {
    activeVia: v.activeVia,
    health: Object.fromEntries(
      Object.entries(v.health).map(([a, h]) => [a, { health: h.health, since: new Date(h.since) }]),
    ),
    lastSwitch: v.lastSwitch ? { ...v.lastSwitch, at: new Date(v.lastSwitch.at) } : null,
  };
}

function fromRow(r: RouteRow): Route {
  return {
    id: r.id,
    host: r.host,
    to: r.destination,
    family: r.destination.includes(':') ? 6 : 4,
    table: Number(r.table_id),
    metric: Number(r.metric),
    via: r.via,
    dev: r.dev,
    scope: r.scope,
    src: r.src,
    onlink: r.onlink,
    force: r.force,
    createAt: date(r.create_at),
    deleteAt: date(r.delete_at),
    comment: r.comment,
    allow: json(r.allow),
    failover: json(r.failover),
    failoverState: failoverStateOf(r.failover_state),
    status: r.status,
    sync: {
      state: r.sync_state,
      error: r.sync_error,
      conflict: r.sync_conflict,
      retryAt: date(r.sync_retry_at),
      syncedAt: date(r.synced_at),
      lastRunId: r.last_run_id,
    },
    createdBy: r.created_by,
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
    removedAt: date(r.removed_at),
    removedReason: r.removed_reason,
    removedBy: r.removed_by,
  };
}

function specColumns(s: RouteSpec) {
  return {
    host: s.host,
    destination: s.to,
    table_id: s.table,
    metric: s.metric,
    via: s.via,
    dev: s.dev,
    scope: s.scope,
    src: s.src,
    onlink: s.onlink,
    force: s.force,
    failover: s.failover ? JSON.stringify(s.failover) : null,
  };
}

/**
 * The spec columns of a change. A candidate route whose candidates stay keeps the `via` of its
 * row (the gateway in use, written only by failover decisions under the row's lock): a value
 * read before this change's transaction may be stale by the time it commits.
 */
function changedSpecColumns(change: RouteChange): Record<string, unknown> {
  const columns: Record<string, unknown> = specColumns(change.spec!);
  if (change.spec!.failover && change.failoverState === undefined) delete columns.via;
  return columns;
}

export interface NewRoute {
  id: string;
  spec: RouteSpec;
  schedule: RouteSchedule;
  comment: string | null;
  allow?: RouteOpening[] | null;
  /** Where a candidate route starts (its first gateway, health unknown); null without. */
  failoverState?: FailoverState | null;
  status: RouteStatus;
  actor: string;
}

export interface RouteFilter {
  host?: string;
  status?: RouteStatus;
  sync?: SyncState;
  /** Routes whose destination contains this address or prefix. */
  contains?: string;
  /** Routes whose destination lies within this prefix. */
  within?: string;
  /** Routes to exactly this prefix. */
  destination?: string;
  limit: number;
  offset: number;
}

export interface RouteChange {
  spec?: RouteSpec;
  /** A candidate route's new standing (its candidates changed); null when it has none now. */
  failoverState?: FailoverState | null;
  schedule?: RouteSchedule;
  comment?: string | null;
  status?: RouteStatus;
}

/** What one apply run found for one route, written back as its sync state. */
export interface SyncUpdate {
  id: string;
  state: SyncState;
  error: string | null;
  conflict: RouteConflict | null;
  retryAt: Date | null;
  runId: string | null;
}

/** A failover decision as the store records it (failover/failover-engine.ts makes them). */
export interface FailoverOutcome {
  state: FailoverState;
  switched: FailoverState['lastSwitch'];
  events: { action: 'gateway_health' | 'failover'; detail: Record<string, unknown> }[];
}

export type Identity = Pick<RouteSpec, 'host' | 'table' | 'to' | 'metric'>;

/** Statuses whose routes should be in the kernel; everything else should not be. */
const IN_KERNEL: RouteStatus = 'active';
const LIVE = ['pending', 'active', 'paused'];
/** What a new route's row is given; every other column takes its default. */
const NEW_ROUTE_COLUMNS = [
  'id uuid',
  'host text',
  'destination cidr',
  'table_id bigint',
  'metric bigint',
  'via text',
  'dev text',
  'scope text',
  'src text',
  'onlink boolean',
  'force boolean',
  'create_at timestamptz',
  'delete_at timestamptz',
  'comment text',
  'allow jsonb',
  'failover jsonb',
  'failover_state jsonb',
  'status text',
  'sync_state text',
  'created_by text',
].join(', ');
const NEW_ROUTE_NAMES = NEW_ROUTE_COLUMNS.split(', ')
  .map((c) => c.split(' ')[0])
  .join(', ');

/**
 * Routes and their events. Every write that changes what a host's kernel should hold bumps
 * that host's work row in the same transaction (`work.bump`), so the change cannot be
 * recorded without the apply it owes, whoever calls and whatever crashes after the commit.
 */
export class RoutesStore {
  /** Transitions, events, schedules and host work: the machinery every kind shares. */
  private readonly lifecycle: LifecycleTable<RouteRow>;
  // Concurrent single writes (a burst of POSTs) share transactions and reads (Batcher).
  private readonly inserts = new Batcher((calls: NewRoute[][]) => this.insertBatch(calls));
  private readonly reads = new Batcher((calls: string[][]) => this.readBatch(calls));
  private readonly liveReads = new Batcher((calls: Identity[][]) => this.findLiveBatch(calls));

  constructor(
    private readonly knex: Knex,
    work: HostWorkStore,
  ) {
    this.lifecycle = new LifecycleTable<RouteRow>(
      knex,
      { table: 'routes', eventsTable: 'route_events', eventKey: 'route_id' },
      work,
    );
  }

  private routes(trx: Knex | Knex.Transaction = this.knex) {
    return trx<RouteRow>('routes');
  }

  /**
   * Inserts new routes with their `created` events, all or none. Each is one statement with
   * the rows as one JSON parameter (jsonb_to_recordset): a batch may hold 20,000 routes, past
   * the 65,535 bind parameters of a statement, and binding every value one by one cost the
   * server more CPU than the database spent inserting them.
   */
  async insert(routes: NewRoute[]): Promise<Route[]> {
    if (routes.length === 0) return [];
    return this.inserts.call(routes);
  }

  /** One transaction for the routes of every call in a batch (see Batcher). */
  /** Told the ids of routes whose rows changed, once committed (see LifecycleTable). */
  onChanged(fn: (ids: string[]) => void): void {
    this.lifecycle.onChanged(fn);
  }

  private async insertBatch(calls: NewRoute[][]): Promise<Route[][]> {
    const inserted = new Map((await this.insertNow(calls.flat())).map((r) => [r.id, r]));
    this.lifecycle.changed([...inserted.keys()]);
    return calls.map((routes) => routes.map((r) => inserted.get(r.id)!));
  }

  private insertNow(routes: NewRoute[]): Promise<Route[]> {
    return this.knex.transaction(async (trx) => {
      const rows = await knexSql(trx)<RouteRow>(
        `insert into routes (${NEW_ROUTE_NAMES})
         select ${NEW_ROUTE_NAMES} from jsonb_to_recordset(?::jsonb) as t(${NEW_ROUTE_COLUMNS})
         returning *`,
        [
          JSON.stringify(
            routes.map((r) => ({
              id: r.id,
              ...specColumns(r.spec),
              failover: r.spec.failover,
              failover_state: r.failoverState ? storedFailoverState(r.failoverState) : null,
              create_at: r.schedule.createAt,
              delete_at: r.schedule.deleteAt,
              comment: r.comment,
              allow: r.allow ?? null,
              status: r.status,
              // Only an active route has kernel work to wait for.
              sync_state: r.status === IN_KERNEL ? 'applying' : 'in_sync',
              created_by: r.actor,
            })),
          ),
        ],
      );
      const inserted = rows.map(fromRow);
      const byActor = new Map<string, NewRoute[]>();
      for (const r of routes) {
        const mine = byActor.get(r.actor);
        if (mine) mine.push(r);
        else byActor.set(r.actor, [r]);
      }
      for (const [actor, mine] of byActor) {
        await this.lifecycle.recordEvents(
          trx,
          mine.map((r) => ({ objectId: r.id, from: null, to: r.status, action: 'create' })),
          actor,
        );
      }
      await this.lifecycle.bumpHosts(
        trx,
        inserted.filter((r) => r.status === IN_KERNEL).map((r) => r.host),
      );
      return inserted;
    });
  }

  async get(id: string): Promise<Route | null> {
    const row = await this.routes().where({ id }).first();
    return row ? fromRow(row) : null;
  }

  async getMany(ids: string[]): Promise<Route[]> {
    if (ids.length === 0) return [];
    const byId = await this.reads.call(ids);
    return ids.map((id) => byId.get(id)).filter((r): r is Route => r !== undefined);
  }

  /** One read for the ids of every call in a batch; each call picks its own. */
  private async readBatch(calls: string[][]): Promise<Map<string, Route>[]> {
    const ids = [...new Set(calls.flat())];
    const rows = await knexSql(this.knex)<RouteRow>(
      `select * from routes where id in (select (jsonb_array_elements_text(?::jsonb))::uuid)`,
      [JSON.stringify(ids)],
    );
    const byId = new Map(rows.map((r) => [r.id, fromRow(r)]));
    return calls.map(() => byId);
  }

  /** Live (not expired or deleted) routes with these identities. */
  async findLive(keys: Identity[]): Promise<Route[]> {
    if (keys.length === 0) return [];
    return this.liveReads.call(keys);
  }

  /** One read for the identities of every call in a batch; each call gets its own matches. */
  private async findLiveBatch(calls: Identity[][]): Promise<Route[][]> {
    const found = await this.findLiveNow(calls.flat());
    return calls.map((keys) => {
      const mine = new Set(keys.map(keyOf));
      return found.filter((r) => mine.has(keyOf(r)));
    });
  }

  private async findLiveNow(keys: Identity[]): Promise<Route[]> {
    // A join against the keys as one JSON parameter, not `(host, table_id, destination,
    // metric) in ((...), ...)`: PGlite takes minutes to plan that row-IN list once it holds a
    // few hundred tuples (1,000 did not finish in 5 minutes), and a list of 20,000 would pass
    // the 65,535 bind-parameter limit.
    const { rows } = await this.knex.raw<{ rows: RouteRow[] }>(
      `select r.* from routes r
         join jsonb_to_recordset(?::jsonb) as k(host text, table_id bigint, destination cidr, metric bigint)
           on r.host = k.host and r.table_id = k.table_id
          and r.destination = k.destination and r.metric = k.metric
        where r.status in ('pending', 'active', 'paused')`,
      [
        JSON.stringify(
          keys.map((k) => ({
            host: k.host,
            table_id: k.table,
            destination: k.to,
            metric: k.metric,
          })),
        ),
      ],
    );
    return rows.map(fromRow);
  }

  async list(f: RouteFilter): Promise<{ items: Route[]; total: number }> {
    const q = this.routes().whereIn('status', LIVE);
    this.filter(q, f);
    return this.page(q, f, [
      { column: 'host', order: 'asc' },
      { column: 'destination', order: 'asc' },
      { column: 'id', order: 'asc' },
    ]);
  }

  /** Active, in-sync objects the host's watcher found missing or altered (see LifecycleTable). */
  markDrifted(items: { id: string; found: 'missing' | 'altered' }[], error: string) {
    return this.lifecycle.markDrifted(items, error);
  }

  /** Every live route (the `routes` topic's seed). */
  async live(): Promise<Route[]> {
    return (await this.routes().whereIn('status', LIVE).orderBy('id')).map(fromRow);
  }

  /** Every live route of these hosts (what a host's watcher compares its kernel with). */
  async liveOfHosts(hosts: string[]): Promise<Route[]> {
    if (hosts.length === 0) return [];
    const rows = await this.routes().whereIn('status', LIVE).whereIn('host', hosts).orderBy('id');
    return rows.map(fromRow);
  }

  async history(f: RouteFilter): Promise<{ items: Route[]; total: number }> {
    const q = this.routes().whereNotNull('removed_at');
    this.filter(q, f);
    return this.page(q, f, [
      { column: 'removed_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ]);
  }

  private filter(q: Knex.QueryBuilder, f: RouteFilter): void {
    if (f.host) q.where('host', f.host);
    if (f.status) q.where('status', f.status);
    if (f.sync) q.where('sync_state', f.sync);
    if (f.contains) q.whereRaw('destination >>= ?::inet', [f.contains]);
    if (f.within) q.whereRaw('destination <<= ?::cidr', [f.within]);
    if (f.destination) q.where('destination', f.destination);
  }

  private async page(
    q: Knex.QueryBuilder,
    f: RouteFilter,
    order: { column: string; order: 'asc' | 'desc' }[],
  ): Promise<{ items: Route[]; total: number }> {
    const [{ n }] = (await q.clone().count({ n: '*' })) as [{ n: number | string }];
    const rows = (await q.select('*').orderBy(order).limit(f.limit).offset(f.offset)) as RouteRow[];
    return { items: rows.map(fromRow), total: Number(n) };
  }

  async events(routeId: string): Promise<RouteEvent[]> {
    return (await this.lifecycle.events(routeId)).map(({ objectId, ...e }) => ({
      ...e,
      routeId: objectId,
    }));
  }

  /**
   * Changes a route if its status is one of `from`, recording the event (and the host work a
   * change of its kernel state owes) in the same transaction; null when the route is not (or
   * no longer) in such a status.
   */
  async change(
    id: string,
    from: readonly RouteStatus[],
    change: RouteChange,
    actor: string,
    action: string,
  ): Promise<Route | null> {
    const row = await this.lifecycle.change(
      id,
      from,
      {
        columns: {
          ...(change.spec ? changedSpecColumns(change) : {}),
          ...(change.schedule
            ? { create_at: change.schedule.createAt, delete_at: change.schedule.deleteAt }
            : {}),
          ...(change.comment !== undefined ? { comment: change.comment } : {}),
          ...(change.failoverState !== undefined
            ? {
                failover_state: change.failoverState
                  ? JSON.stringify(storedFailoverState(change.failoverState))
                  : null,
              }
            : {}),
        },
        affectsHost: change.spec !== undefined,
        status: change.status,
      },
      actor,
      action,
    );
    return row ? fromRow(row) : null;
  }

  /** Fires the routes' due transitions (lifecycle-table.ts). */
  async fireDue(limit: number): Promise<Route[]> {
    return (await this.lifecycle.fireDue(limit)).map(fromRow);
  }

  nextDueAt(): Promise<Date | null> {
    return this.lifecycle.nextDueAt();
  }

  /**
   * The routes a run settles on these hosts, read in one statement (one snapshot): every
   * route that should be in the kernel (active), and every one whose last change is not yet
   * in sync.
   */
  async settleable(hosts: string[]): Promise<Map<string, Route[]>> {
    const byHost = new Map<string, Route[]>(hosts.map((h) => [h, []]));
    if (hosts.length === 0) return byHost;
    const rows = await this.routes()
      .whereIn('host', hosts)
      .where((w) => w.whereNot('sync_state', 'in_sync').orWhere('status', IN_KERNEL));
    for (const r of rows) byHost.get(r.host)!.push(fromRow(r));
    return byHost;
  }

  /**
   * Records drift a convergence run found: routes the host had lost or altered, repaired or
   * (REPAIR_DRIFT off) only reported.
   */
  async recordDrift(
    items: { id: string; host: string; op: string }[],
    runId: string,
    repaired: boolean,
  ): Promise<void> {
    if (items.length === 0) return;
    await this.knex('route_events').insert(
      items.map((d) => ({
        route_id: d.id,
        actor: 'reconciler',
        from_status: IN_KERNEL,
        to_status: IN_KERNEL,
        action: repaired ? 'drift_repaired' : 'drift_detected',
        detail: JSON.stringify({
          run_id: runId,
          host: d.host,
          found: d.op === 'added' ? 'missing' : 'altered',
        }),
      })),
    );
  }

  async recordSync(updates: SyncUpdate[]): Promise<void> {
    if (updates.length === 0) return;
    // One statement for any number of routes: the bench writes thousands per run.
    await this.knex.raw(
      `update routes r set
         sync_state = u.state,
         sync_error = u.error,
         sync_conflict = u.conflict::jsonb,
         sync_retry_at = u.retry_at::timestamptz,
         synced_at = case when u.state = 'in_sync' then now() else r.synced_at end,
         last_run_id = coalesce(u.run_id::uuid, r.last_run_id)
       from jsonb_to_recordset(?::jsonb)
         as u(id uuid, state text, error text, conflict text, retry_at text, run_id text)
       where r.id = u.id`,
      [
        JSON.stringify(
          updates.map((u) => ({
            id: u.id,
            state: u.state,
            error: u.error,
            conflict: u.conflict ? JSON.stringify(u.conflict) : null,
            retry_at: u.retryAt?.toISOString() ?? null,
            run_id: u.runId,
          })),
        ),
      ],
    );
    this.lifecycle.changed(updates.map((u) => u.id));
  }

  /** Active routes with candidate gateways (what the probers check and failover decides). */
  async candidateRoutes(): Promise<Route[]> {
    const rows = await this.routes()
      .whereNotNull('failover')
      .where('status', IN_KERNEL)
      .orderBy('id');
    return rows.map(fromRow);
  }

  /** Whether any of these routes is an active route with candidate gateways. */
  async anyCandidate(ids: string[]): Promise<boolean> {
    if (ids.length === 0) return false;
    const row = await knexSql(this.knex)<{ id: string }>(
      `select id from routes
        where failover is not null and status = 'active'
          and id in (select (jsonb_array_elements_text(?::jsonb))::uuid)
        limit 1`,
      [JSON.stringify(ids)],
    );
    return row.length > 0;
  }

  /**
   * Records failover decisions, each made by `decide` on the route as locked in this
   * transaction (so two deciders, or a decider and a PATCH, never interleave): the route's
   * new standing, its `gateway_health` and `failover` events, and, for every route whose
   * gateways changed, its host's work, all in one transaction. Returns the routes changed.
   */
  async recordFailover(
    ids: string[],
    decide: (route: Route) => FailoverOutcome | null,
    /** Whether the decider may still decide (its lease), asked in the transaction. */
    fence: (trx: Knex.Transaction) => Promise<boolean> = async () => true,
  ): Promise<{ route: Route; outcome: FailoverOutcome }[]> {
    if (ids.length === 0) return [];
    const done = await this.knex.transaction(async (trx) => {
      if (!(await fence(trx))) return [];
      const rows = (await this.routes(trx)
        .whereIn('id', ids)
        .where('status', IN_KERNEL)
        .whereNotNull('failover')
        .orderBy('id')
        .forUpdate()) as RouteRow[];
      const out: { route: Route; outcome: FailoverOutcome }[] = [];
      for (const row of rows) {
        const route = fromRow(row);
        const outcome = decide(route);
        if (!outcome) continue;
        const state = outcome.state;
        const switched = outcome.switched !== null;
        const [updated] = (await this.routes(trx)
          .where({ id: route.id })
          .update({
            failover_state: JSON.stringify(storedFailoverState(state)),
            via: state.activeVia[0] ?? route.via,
            ...(switched ? { sync_state: 'applying', sync_error: null } : {}),
            updated_at: trx.fn.now(),
          } as never)
          .returning('*')) as RouteRow[];
        for (const e of outcome.events) {
          await this.lifecycle.recordEvents(
            trx,
            [{ objectId: route.id, from: IN_KERNEL, to: IN_KERNEL, action: e.action }],
            'failover',
            e.detail,
          );
        }
        out.push({ route: fromRow(updated!), outcome });
      }
      await this.lifecycle.bumpHosts(
        trx,
        out.filter((o) => o.outcome.switched).map((o) => o.route.host),
      );
      return out;
    });
    this.lifecycle.changed(done.map((d) => d.route.id));
    return done;
  }

  /** Hosts that have routes routeplane put in their kernels. */
  async hostsWithActiveRoutes(): Promise<string[]> {
    const rows = await this.routes().distinct('host').where('status', IN_KERNEL);
    return rows.map((r) => r.host);
  }
}
