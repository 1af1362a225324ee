import type { Knex } from 'knex';
import { LifecycleTable } from '../lifecycle/lifecycle-table.ts';
import { LIVE_STATUSES, ON_HOST, type LifecycleStatus } from '../lifecycle/status.ts';
import type { HostWorkStore } from '../reconciler/host-work-store.ts';
import { knexSql } from '../reconciler/sql.ts';
import type { SyncUpdate } from '../routes/routes-store.ts';
import type { SyncState } from '../routes/types.ts';
import type { FirewallRule, RuleMatch, RuleSpec } from './types.ts';

interface RuleRow {
  id: string;
  host: string;
  chain: RuleSpec['chain'];
  family: RuleSpec['family'];
  protocol: RuleSpec['protocol'];
  match: RuleMatch;
  action: RuleSpec['action'];
  priority: number;
  identity: string;
  create_at: Date | null;
  delete_at: Date | null;
  comment: string | null;
  status: LifecycleStatus;
  sync_state: SyncState;
  sync_error: string | null;
  sync_retry_at: Date | null;
  synced_at: Date | null;
  last_run_id: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  removed_at: Date | null;
  removed_reason: 'expired' | 'deleted' | null;
  removed_by: string | null;
  route_id: string | null;
}

const date = (d: Date | string | null) => (d === null ? null : new Date(d));

function fromRow(r: RuleRow): FirewallRule {
  return {
    id: r.id,
    host: r.host,
    chain: r.chain,
    family: r.family,
    protocol: r.protocol,
    match: typeof r.match === 'string' ? (JSON.parse(r.match) as RuleMatch) : r.match,
    action: r.action,
    priority: Number(r.priority),
    comment: r.comment,
    routeId: r.route_id ?? null,
    createAt: date(r.create_at),
    deleteAt: date(r.delete_at),
    status: r.status,
    sync: {
      state: r.sync_state,
      error: r.sync_error,
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

export interface NewRule {
  id: string;
  spec: RuleSpec;
  identity: string;
  comment: string | null;
  routeId: string | null;
  createAt: Date | null;
  deleteAt: Date | null;
  status: LifecycleStatus;
  actor: string;
}

export interface RuleFilter {
  host?: string;
  routeId?: string;
  status?: LifecycleStatus;
  limit: number;
  offset: number;
}

/** Whether routeplane manages each host's firewall: absent (never), true, or false (released). */
export type ManagedState = boolean | undefined;

/**
 * Firewall rules and their events, on the lifecycle machinery every kind shares. A write that
 * changes what a host should hold bumps its work row in the same transaction.
 */
export class FirewallStore {
  private readonly lifecycle: LifecycleTable<RuleRow>;

  constructor(
    private readonly knex: Knex,
    private readonly work: HostWorkStore,
  ) {
    this.lifecycle = new LifecycleTable<RuleRow>(
      knex,
      { table: 'firewall_rules', eventsTable: 'firewall_rule_events', eventKey: 'rule_id' },
      work,
    );
  }

  private rules(trx: Knex | Knex.Transaction = this.knex) {
    return trx<RuleRow>('firewall_rules');
  }

  /**
   * Inserts new rules with their `create` events, all or none; each rule's host is managed
   * from then on (routeplane's table stays until the host is released).
   */
  /** Told the ids of rules whose rows changed, once committed (see LifecycleTable). */
  onChanged(fn: (ids: string[]) => void): void {
    this.lifecycle.onChanged(fn);
  }

  async insert(rules: NewRule[]): Promise<FirewallRule[]> {
    if (rules.length === 0) return [];
    return this.knex
      .transaction(async (trx) => {
        const rows = await knexSql(trx)<RuleRow>(
          `insert into firewall_rules (id, host, chain, family, protocol, match, action, priority,
           identity, create_at, delete_at, comment, status, sync_state, created_by, route_id)
         select id, host, chain, family, protocol, match, action, priority, identity, create_at,
           delete_at, comment, status, sync_state, created_by, route_id
         from jsonb_to_recordset(?::jsonb) as t(id uuid, host text, chain text, family text,
           protocol text, match jsonb, action text, priority int, identity text,
           create_at timestamptz, delete_at timestamptz, comment text, status text,
           sync_state text, created_by text, route_id uuid)
         returning *`,
          [
            JSON.stringify(
              rules.map((r) => ({
                id: r.id,
                host: r.spec.host,
                chain: r.spec.chain,
                family: r.spec.family,
                protocol: r.spec.protocol,
                match: r.spec.match,
                action: r.spec.action,
                priority: r.spec.priority,
                identity: r.identity,
                create_at: r.createAt,
                delete_at: r.deleteAt,
                comment: r.comment,
                status: r.status,
                sync_state: r.status === ON_HOST ? 'applying' : 'in_sync',
                created_by: r.actor,
                route_id: r.routeId,
              })),
            ),
          ],
        );
        const byActor = new Map<string, NewRule[]>();
        for (const r of rules) byActor.set(r.actor, [...(byActor.get(r.actor) ?? []), r]);
        for (const [actor, mine] of byActor) {
          await this.lifecycle.recordEvents(
            trx,
            mine.map((r) => ({ objectId: r.id, from: null, to: r.status, action: 'create' })),
            actor,
          );
        }
        const hosts = [...new Set(rules.map((r) => r.spec.host))];
        await knexSql(trx)(
          `insert into host_firewalls (host, managed)
           select h, true from jsonb_array_elements_text(?::jsonb) as t(h)
         on conflict (host) do update set managed = true, updated_at = now()`,
          [JSON.stringify(hosts)],
        );
        const inserted = rows.map(fromRow);
        await this.lifecycle.bumpHosts(
          trx,
          inserted.filter((r) => r.status === ON_HOST).map((r) => r.host),
        );
        return inserted;
      })
      .then((inserted) => {
        this.lifecycle.changed(inserted.map((r) => r.id));
        return inserted;
      });
  }

  async get(id: string): Promise<FirewallRule | null> {
    const row = await this.rules().where({ id }).first();
    return row ? fromRow(row) : null;
  }

  async getMany(ids: string[]): Promise<FirewallRule[]> {
    if (ids.length === 0) return [];
    const rows = await this.rules().whereIn('id', ids);
    const byId = new Map(rows.map((r) => [r.id, fromRow(r)]));
    return ids.map((id) => byId.get(id)).filter((r): r is FirewallRule => r !== undefined);
  }

  /** Live rules with these identities. */
  async findLive(identities: string[]): Promise<Map<string, FirewallRule>> {
    if (identities.length === 0) return new Map();
    const rows = await this.rules()
      .whereIn('identity', identities)
      .whereIn('status', LIVE_STATUSES as LifecycleStatus[]);
    return new Map(rows.map((r) => [r.identity, fromRow(r)]));
  }

  async list(f: RuleFilter): Promise<{ items: FirewallRule[]; total: number }> {
    const q = this.rules().whereIn('status', f.status ? [f.status] : (LIVE_STATUSES as never));
    if (f.host) q.where('host', f.host);
    if (f.routeId) q.where('route_id', f.routeId);
    const [{ count }] = (await q.clone().count({ count: '*' })) as [{ count: string | number }];
    const rows = await q
      .orderBy([{ column: 'host' }, { column: 'priority' }, { column: 'id' }])
      .limit(f.limit)
      .offset(f.offset);
    return { items: rows.map(fromRow), total: Number(count) };
  }

  /** Expired and deleted rules, newest first. */
  /** Active, in-sync objects the host's watcher found missing or altered (see LifecycleTable). */
  markDrifted(items: { id: string; found: 'missing' | 'altered' }[], error: string) {
    return this.lifecycle.markDrifted(items, error);
  }

  /** Every live rule (the `firewall` topic's seed). */
  async live(): Promise<FirewallRule[]> {
    const rows = await this.rules()
      .whereIn('status', LIVE_STATUSES as never)
      .orderBy('id');
    return rows.map(fromRow);
  }

  /** Every live rule of these hosts (what a host's watcher compares its table with). */
  async liveOfHosts(hosts: string[]): Promise<FirewallRule[]> {
    if (hosts.length === 0) return [];
    const rows = await this.rules()
      .whereIn('status', LIVE_STATUSES as never)
      .whereIn('host', hosts)
      .orderBy('id');
    return rows.map(fromRow);
  }

  async history(f: RuleFilter): Promise<{ items: FirewallRule[]; total: number }> {
    const q = this.rules().whereNotNull('removed_at');
    if (f.host) q.where('host', f.host);
    if (f.routeId) q.where('route_id', f.routeId);
    if (f.status) q.where('status', f.status);
    const [{ count }] = (await q.clone().count({ count: '*' })) as [{ count: string | number }];
    const rows = await q
      .orderBy([
        { column: 'removed_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .limit(f.limit)
      .offset(f.offset);
    return { items: rows.map(fromRow), total: Number(count) };
  }

  /** A live rule's comment or schedule, and the status that schedule gives it. */
  async reschedule(
    id: string,
    from: LifecycleStatus,
    columns: { comment?: string | null; create_at?: Date | null; delete_at?: Date | null },
    status: LifecycleStatus,
    actor: string,
  ): Promise<FirewallRule | null> {
    const row = await this.lifecycle.change(id, [from], { columns, status }, actor, 'update');
    return row ? fromRow(row) : null;
  }

  /** Live rules of these hosts that name a set (`@name`) in any of their match fields. */
  async liveNaming(hosts: string[], ref: string): Promise<{ id: string; spec: FirewallRule }[]> {
    if (hosts.length === 0) return [];
    const named = JSON.stringify([ref]);
    const rows = await this.rules()
      .whereIn('host', hosts)
      .whereIn('status', LIVE_STATUSES as LifecycleStatus[])
      .where((w) => {
        for (const f of ['src', 'dst', 'sport', 'dport']) {
          w.orWhereRaw(`match -> '${f}' = ?::jsonb`, [named]);
        }
      })
      .orderBy('id');
    return rows.map((r) => ({ id: r.id, spec: fromRow(r) }));
  }

  /** Live rules that open traffic for a route. */
  async liveOfRoute(routeId: string): Promise<FirewallRule[]> {
    const rows = await this.rules()
      .where('route_id', routeId)
      .whereIn('status', LIVE_STATUSES as LifecycleStatus[])
      .orderBy('id');
    return rows.map(fromRow);
  }

  /** Of these routes, the active ones: a route's openings render only while it is active. */
  async activeRoutes(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.knex('routes')
      .whereIn('id', ids)
      .where('status', 'active')
      .select('id');
    return new Set(rows.map((r: { id: string }) => r.id));
  }

  /** Live rules of a host (released only when it has none). */
  async liveCount(host: string): Promise<number> {
    const [{ count }] = (await this.rules()
      .where('host', host)
      .whereIn('status', LIVE_STATUSES as LifecycleStatus[])
      .count({ count: '*' })) as [{ count: string | number }];
    return Number(count);
  }

  async change(
    id: string,
    from: readonly LifecycleStatus[],
    change: { status: LifecycleStatus },
    actor: string,
    action: string,
  ): Promise<FirewallRule | null> {
    const row = await this.lifecycle.change(id, from, { status: change.status }, actor, action);
    return row ? fromRow(row) : null;
  }

  async fireDue(limit: number): Promise<FirewallRule[]> {
    return (await this.lifecycle.fireDue(limit)).map(fromRow);
  }

  nextDueAt(): Promise<Date | null> {
    return this.lifecycle.nextDueAt();
  }

  async events(ruleId: string) {
    return this.lifecycle.events(ruleId);
  }

  /** Whether each host's firewall is managed: true, false (released) or absent (never). */
  async managed(hosts: string[]): Promise<Map<string, boolean>> {
    if (hosts.length === 0) return new Map();
    const rows = await this.knex('host_firewalls').whereIn('host', hosts);
    return new Map(rows.map((r: { host: string; managed: boolean }) => [r.host, r.managed]));
  }

  /** Hosts whose firewall routeplane manages. */
  async managedHosts(): Promise<string[]> {
    const rows = await this.knex('host_firewalls').where('managed', true).select('host');
    return rows.map((r: { host: string }) => r.host);
  }

  /**
   * Manages these hosts' firewalls (their inventory says so), owing an apply to each that was
   * not managed yet: a host the inventory names gets routeplane's table without a rule.
   */
  async adopt(hosts: string[]): Promise<string[]> {
    if (hosts.length === 0) return [];
    return this.knex.transaction(async (trx) => {
      const rows = await knexSql(trx)<{ host: string }>(
        `insert into host_firewalls as f (host, managed)
           select h, true from jsonb_array_elements_text(?::jsonb) as t(h)
         on conflict (host) do update set managed = true, updated_at = now()
           where f.managed = false
         returning host`,
        [JSON.stringify(hosts)],
      );
      const adopted = rows.map((r) => r.host);
      await this.work.bump(trx, adopted);
      return adopted;
    });
  }

  /**
   * Releases a host with no live rule: its table is removed by the next apply, owed now.
   * Returns false when the host has live rules.
   */
  async release(host: string): Promise<boolean> {
    return this.knex.transaction(async (trx) => {
      const [{ count }] = (await trx('firewall_rules')
        .where('host', host)
        .whereIn('status', LIVE_STATUSES as LifecycleStatus[])
        .count({ count: '*' })) as [{ count: string | number }];
      if (Number(count) > 0) return false;
      await knexSql(trx)(
        `insert into host_firewalls (host, managed) values (?, false)
         on conflict (host) do update set managed = false, updated_at = now()`,
        [host],
      );
      await this.work.bump(trx, [host]);
      return true;
    });
  }

  /** How the host's last attempted apply ended: null when it applied, else its error. */
  async lastFailure(host: string): Promise<{ error: string; runId: string | null } | null> {
    return (await this.lastFailures([host])).get(host) ?? null;
  }

  /** lastFailure of many hosts in one read: those whose last attempt failed. */
  async lastFailures(
    hosts: string[],
  ): Promise<Map<string, { error: string; runId: string | null }>> {
    const out = new Map<string, { error: string; runId: string | null }>();
    if (hosts.length === 0) return out;
    for (const [host, state] of await this.work.states(hosts)) {
      if (state.appliedGen >= state.attemptedGen) continue;
      out.set(host, { error: state.lastError ?? 'the apply run failed', runId: state.lastRunId });
    }
    return out;
  }

  /** Rules a run settles on these hosts: unsynced ones and the active ones it carries. */
  async settleable(hosts: string[]): Promise<Map<string, FirewallRule[]>> {
    const byHost = new Map<string, FirewallRule[]>(hosts.map((h) => [h, []]));
    if (hosts.length === 0) return byHost;
    const rows = await this.rules()
      .whereIn('host', hosts)
      .where((w) => w.whereNot('sync_state', 'in_sync').orWhere('status', ON_HOST))
      .orderBy([{ column: 'priority' }, { column: 'id' }]);
    for (const r of rows) byHost.get(r.host)!.push(fromRow(r));
    return byHost;
  }

  async recordSync(updates: SyncUpdate[]): Promise<void> {
    if (updates.length === 0) return;
    await this.knex.raw(
      `update firewall_rules r set
         sync_state = u.state,
         sync_error = u.error,
         sync_retry_at = u.retry_at::timestamptz,
         synced_at = case when u.state = 'in_sync' then now() else r.synced_at end,
         last_run_id = coalesce(u.run_id::uuid, r.last_run_id)
       from jsonb_to_recordset(?::jsonb)
         as u(id uuid, state text, error text, retry_at text, run_id text)
       where r.id = u.id`,
      [
        JSON.stringify(
          updates.map((u) => ({
            id: u.id,
            state: u.state,
            error: u.error,
            retry_at: u.retryAt?.toISOString() ?? null,
            run_id: u.runId,
          })),
        ),
      ],
    );
    this.lifecycle.changed(updates.map((u) => u.id));
  }
}
