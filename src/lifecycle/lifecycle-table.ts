import type { Knex } from 'knex';
import type { HostWorkStore } from '../reconciler/host-work-store.ts';
import { LIVE_STATUSES, ON_HOST, type LifecycleStatus } from './status.ts';

/** Where a kind keeps its objects and their events; the columns every kind has. */
export interface LifecycleTableSpec {
  /** Objects: id, host, status, create_at, delete_at, sync_state, sync_error, sync_conflict, removed_at, removed_reason, removed_by, updated_at. */
  table: string;
  /** Events: <eventKey>, actor, from_status, to_status, action, detail. */
  eventsTable: string;
  eventKey: string;
}

/** The columns of an object the lifecycle reads and writes. */
export interface LifecycleRow {
  id: string;
  host: string;
  status: LifecycleStatus;
}

export interface LifecycleEvent {
  id: number;
  objectId: string;
  at: Date;
  actor: string;
  action: string;
  from: LifecycleStatus | null;
  to: LifecycleStatus;
  detail: Record<string, unknown>;
}

/** A change to one object: its kind's own columns, and perhaps a new status. */
export interface LifecycleChange {
  columns?: Record<string, unknown>;
  /** Whether `columns` change what the host should hold (an active object's host work). */
  affectsHost?: boolean;
  status?: LifecycleStatus;
}

/**
 * The lifecycle machinery every kind shares, over its own table: status transitions with
 * their events, scheduled transitions claimed with SKIP LOCKED, and the host work each owes,
 * bumped in the same transaction (ADR 008). A kind's store adds its own columns and queries.
 */
export class LifecycleTable<Row extends LifecycleRow> {
  private readonly changedListeners: ((ids: string[]) => void)[] = [];

  constructor(
    private readonly knex: Knex,
    private readonly spec: LifecycleTableSpec,
    private readonly work: HostWorkStore,
  ) {}

  private rows(trx: Knex | Knex.Transaction = this.knex) {
    return trx<Row>(this.spec.table);
  }

  /**
   * Told the ids of objects whose rows changed, after the change committed (the live topics
   * re-read exactly those): every write of the kind's store goes through here or calls it.
   */
  onChanged(fn: (ids: string[]) => void): void {
    this.changedListeners.push(fn);
  }

  changed(ids: string[]): void {
    if (ids.length === 0) return;
    for (const fn of this.changedListeners) fn(ids);
  }

  /**
   * Marks active objects the host's watcher found missing or altered as drifted, with a
   * `drift_detected` event each; an object already drifted, applying or failed is left as
   * it is (its own run reports it). Returns the ids it marked.
   */
  async markDrifted(
    items: { id: string; found: 'missing' | 'altered' }[],
    error: string,
  ): Promise<string[]> {
    if (items.length === 0) return [];
    return this.knex
      .transaction(async (trx) => {
        const marked = (await this.rows(trx)
          .whereIn(
            'id',
            items.map((i) => i.id),
          )
          .where({ status: ON_HOST, sync_state: 'in_sync' } as never)
          .update({ sync_state: 'drifted', sync_error: error, updated_at: trx.fn.now() } as never)
          .returning(['id'])) as { id: string }[];
        const ids = new Set(marked.map((m) => m.id));
        for (const found of ['missing', 'altered'] as const) {
          await this.recordEvents(
            trx,
            items
              .filter((i) => ids.has(i.id) && i.found === found)
              .map((i) => ({
                objectId: i.id,
                from: ON_HOST,
                to: ON_HOST,
                action: 'drift_detected',
              })),
            'watcher',
            { found },
          );
        }
        return [...ids];
      })
      .then((ids) => {
        this.changed(ids);
        return ids;
      });
  }

  /** Records events in the caller's transaction. */
  async recordEvents(
    trx: Knex | Knex.Transaction,
    events: {
      objectId: string;
      from: LifecycleStatus | null;
      to: LifecycleStatus;
      action: string;
    }[],
    actor: string,
    detail: Record<string, unknown> = {},
  ): Promise<void> {
    if (events.length === 0) return;
    // One JSON parameter, not six bound values per event: a batch records thousands.
    await trx.raw(
      `insert into ?? (??, actor, from_status, to_status, action, detail)
       select e.object_id, ?, e.from_status, e.to_status, e.action, ?::jsonb
       from jsonb_to_recordset(?::jsonb)
         as e(object_id uuid, from_status text, to_status text, action text)`,
      [
        this.spec.eventsTable,
        this.spec.eventKey,
        actor,
        JSON.stringify(detail),
        JSON.stringify(
          events.map((e) => ({
            object_id: e.objectId,
            from_status: e.from,
            to_status: e.to,
            action: e.action,
          })),
        ),
      ],
    );
  }

  /** Bumps the work of the hosts whose objects a transaction put on or took off them. */
  bumpHosts(trx: Knex.Transaction, hosts: Iterable<string>) {
    return this.work.bump(trx, hosts);
  }

  /**
   * Changes an object if its status is one of `from`, recording the event and the host work
   * in the same transaction; null when the object is not (or no longer) in such a status.
   */
  async change(
    id: string,
    from: readonly LifecycleStatus[],
    change: LifecycleChange,
    actor: string,
    action: string,
  ): Promise<Row | null> {
    return this.knex
      .transaction(async (trx) => {
        const current = (await this.rows(trx)
          .where({ id } as never)
          .whereIn('status', from as LifecycleStatus[])
          .forUpdate()
          .first()) as Row | undefined;
        if (!current) return null;
        const status = change.status ?? current.status;
        const removed = status === 'expired' || status === 'deleted';
        const hostChanged =
          status !== current.status || (Boolean(change.affectsHost) && status === ON_HOST);
        const [row] = (await this.rows(trx)
          .where({ id } as never)
          .update({
            ...(change.columns ?? {}),
            status,
            ...(hostChanged
              ? { sync_state: 'applying', sync_error: null, sync_conflict: null }
              : {}),
            ...(removed
              ? { removed_at: this.knex.fn.now(), removed_reason: status, removed_by: actor }
              : {}),
            updated_at: this.knex.fn.now(),
          } as never)
          .returning('*')) as Row[];
        await this.recordEvents(
          trx,
          [{ objectId: id, from: current.status, to: status, action }],
          actor,
        );
        // An object moved to another host leaves the old one too.
        if (hostChanged) await this.work.bump(trx, [current.host, row!.host]);
        return row!;
      })
      .then((row) => {
        if (row) this.changed([row.id]);
        return row;
      });
  }

  /**
   * Claims and fires every transition due at the database's `now()`: pending objects whose
   * create_at has come become active, live ones whose delete_at has come expire. Rows are
   * locked with SKIP LOCKED, so replicas sharing the database never fire one twice, and the
   * transition and the host work it owes commit together: whichever replica survives applies
   * it, even if this one dies right after the commit.
   */
  async fireDue(limit: number): Promise<Row[]> {
    const { table } = this.spec;
    return this.knex
      .transaction(async (trx) => {
        const due = (await trx(table)
          .select('id', 'status', 'create_at', 'delete_at')
          .where((w) =>
            w
              .where((p) => p.where('status', 'pending').where('create_at', '<=', trx.fn.now()))
              .orWhere((e) =>
                e
                  .whereIn('status', LIVE_STATUSES as string[])
                  .where('delete_at', '<=', trx.fn.now()),
              ),
          )
          .orderByRaw('least(create_at, delete_at)')
          .limit(limit)
          .forUpdate()
          .skipLocked()) as {
          id: string;
          status: LifecycleStatus;
          create_at: Date | null;
          delete_at: Date | null;
        }[];
        if (due.length === 0) return [];
        const now = new Date((await trx.raw('select now() as now')).rows[0].now as Date);
        const expire = due.filter((r) => r.delete_at && new Date(r.delete_at) <= now);
        const activate = due.filter((r) => !expire.includes(r));
        const fired: Row[] = [];
        if (activate.length > 0) {
          fired.push(
            ...((await trx(table)
              .whereIn(
                'id',
                activate.map((r) => r.id),
              )
              .update({
                status: 'active',
                sync_state: 'applying',
                sync_error: null,
                updated_at: trx.fn.now(),
              })
              .returning('*')) as Row[]),
          );
        }
        if (expire.length > 0) {
          fired.push(
            ...((await trx(table)
              .whereIn(
                'id',
                expire.map((r) => r.id),
              )
              .update({
                status: 'expired',
                sync_state: 'applying',
                sync_error: null,
                sync_conflict: null,
                removed_at: trx.fn.now(),
                removed_reason: 'expired',
                removed_by: 'scheduler',
                updated_at: trx.fn.now(),
              })
              .returning('*')) as Row[]),
          );
        }
        const before = new Map(due.map((r) => [r.id, r.status]));
        await this.recordEvents(
          trx,
          fired.map((r) => ({
            objectId: r.id,
            from: before.get(r.id)!,
            to: r.status,
            action: r.status === 'expired' ? 'expire' : 'activate',
          })),
          'scheduler',
        );
        await this.work.bump(
          trx,
          fired.map((r) => r.host),
        );
        return fired;
      })
      .then((fired) => {
        this.changed(fired.map((r) => r.id));
        return fired;
      });
  }

  /** When the next transition is due, or null when nothing is scheduled. */
  async nextDueAt(): Promise<Date | null> {
    const { table } = this.spec;
    const row = await this.knex
      .from(
        this.knex.raw(
          `(
          select min(create_at) as at from ?? where status = 'pending'
          union all
          select min(delete_at) from ??
            where status in ('pending', 'active', 'paused') and delete_at is not null
        ) as due`,
          [table, table],
        ),
      )
      .min({ at: 'at' })
      .first();
    return row?.at ? new Date(row.at) : null;
  }

  async events(objectId: string): Promise<LifecycleEvent[]> {
    const rows = await this.knex(this.spec.eventsTable)
      .where({ [this.spec.eventKey]: objectId })
      .orderBy('id');
    return rows.map((r) => ({
      id: Number(r.id),
      objectId: r[this.spec.eventKey],
      at: new Date(r.at),
      actor: r.actor,
      action: r.action,
      from: r.from_status,
      to: r.to_status,
      detail: r.detail,
    }));
  }
}
