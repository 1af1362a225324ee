import type { Knex } from 'knex';
import type { HostWorkStore } from '../reconciler/host-work-store.ts';
import { knexSql } from '../reconciler/sql.ts';

export type SetType = 'address' | 'port';

/** A named set of addresses or ports for a host or a group (`target`). */
export interface FirewallSet {
  id: string;
  name: string;
  target: string;
  type: SetType;
  comment: string | null;
  elements: string[];
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
  deletedBy: string | null;
}

export interface SetEvent {
  id: number;
  at: Date;
  actor: string;
  action: 'create' | 'add' | 'remove' | 'delete';
  elements: string[];
}

interface SetRow {
  id: string;
  name: string;
  target: string;
  type: SetType;
  comment: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
  deleted_by: string | null;
}

function fromRow(r: SetRow, elements: string[]): FirewallSet {
  return {
    id: r.id,
    name: r.name,
    target: r.target,
    type: r.type,
    comment: r.comment,
    elements,
    createdBy: r.created_by,
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
    deletedAt: r.deleted_at ? new Date(r.deleted_at) : null,
    deletedBy: r.deleted_by,
  };
}

/**
 * Firewall sets, their elements and events. A change to a set's elements bumps the work of
 * the hosts that hold it (the caller names them: the target's managed members) in the same
 * transaction, as every write of desired state does.
 */
export class SetStore {
  constructor(
    private readonly knex: Knex,
    private readonly work: HostWorkStore,
  ) {}

  private async withElements(rows: SetRow[]): Promise<FirewallSet[]> {
    if (rows.length === 0) return [];
    const elements = await this.knex('firewall_set_elements')
      .whereIn(
        'set_id',
        rows.map((r) => r.id),
      )
      .orderBy(['set_id', 'element'])
      .select('set_id', 'element');
    const byId = new Map<string, string[]>(rows.map((r) => [r.id, []]));
    for (const e of elements as { set_id: string; element: string }[]) {
      byId.get(e.set_id)!.push(e.element);
    }
    return rows.map((r) => fromRow(r, byId.get(r.id)!));
  }

  private async event(
    trx: Knex.Transaction,
    setId: string,
    actor: string,
    action: SetEvent['action'],
    elements: string[],
  ): Promise<void> {
    await trx('firewall_set_events').insert({
      set_id: setId,
      actor,
      action,
      elements: JSON.stringify(elements),
    });
  }

  /** Creates a set with its first elements; a live set of that name and target is a 23505. */
  async create(
    set: { id: string; name: string; target: string; type: SetType; comment: string | null },
    elements: string[],
    actor: string,
    hosts: string[],
  ): Promise<FirewallSet> {
    await this.knex.transaction(async (trx) => {
      await trx('firewall_sets').insert({ ...set, created_by: actor });
      await this.insertElements(trx, set.id, elements, actor);
      await this.event(trx, set.id, actor, 'create', elements);
      if (elements.length > 0) await this.work.bump(trx, hosts);
    });
    return (await this.get(set.id))!;
  }

  private async insertElements(
    trx: Knex.Transaction,
    setId: string,
    elements: string[],
    actor: string,
  ): Promise<string[]> {
    if (elements.length === 0) return [];
    const rows = await knexSql(trx)<{ element: string }>(
      `insert into firewall_set_elements (set_id, element, added_by)
         select ?, e, ? from jsonb_array_elements_text(?::jsonb) as t(e)
       on conflict do nothing
       returning element`,
      [setId, actor, JSON.stringify(elements)],
    );
    return rows.map((r) => r.element).sort();
  }

  async get(id: string): Promise<FirewallSet | null> {
    const row = await this.knex<SetRow>('firewall_sets').where({ id }).first();
    return row ? (await this.withElements([row]))[0]! : null;
  }

  /** Live sets, optionally only those of these targets. */
  async list(targets?: string[]): Promise<FirewallSet[]> {
    const q = this.knex<SetRow>('firewall_sets').whereNull('deleted_at');
    if (targets) q.whereIn('target', targets);
    return this.withElements(await q.orderBy(['target', 'name']));
  }

  /**
   * Adds elements (those already there are left as they are) or removes them (absent ones
   * are ignored); the hosts' work is bumped only when something changed. Null when the set
   * is gone.
   */
  async change(
    id: string,
    action: 'add' | 'remove',
    elements: string[],
    actor: string,
    hosts: string[],
  ): Promise<{ set: FirewallSet; changed: string[] } | null> {
    const changed = await this.knex.transaction(async (trx) => {
      const live = await this.lockLive(trx, id);
      if (!live) return null;
      const done =
        action === 'add'
          ? await this.insertElements(trx, id, elements, actor)
          : await this.deleteElements(trx, id, elements);
      if (done.length > 0) await this.touched(trx, id, actor, action, done, hosts);
      return done;
    });
    return changed === null ? null : { set: (await this.get(id))!, changed };
  }

  private async deleteElements(
    trx: Knex.Transaction,
    setId: string,
    elements: string[],
  ): Promise<string[]> {
    const rows = await knexSql(trx)<{ element: string }>(
      `delete from firewall_set_elements
        where set_id = ? and element in (select jsonb_array_elements_text(?::jsonb))
        returning element`,
      [setId, JSON.stringify(elements)],
    );
    return rows.map((r) => r.element).sort();
  }

  /** Deletes a live set (its elements leave the hosts' tables). False when already gone. */
  async delete(id: string, actor: string, hosts: string[]): Promise<boolean> {
    return this.knex.transaction(async (trx) => {
      const live = await this.lockLive(trx, id);
      if (!live) return false;
      await trx('firewall_sets')
        .where({ id })
        .update({ deleted_at: trx.fn.now(), deleted_by: actor, updated_at: trx.fn.now() });
      await this.event(trx, id, actor, 'delete', []);
      await this.work.bump(trx, hosts);
      return true;
    });
  }

  private async lockLive(trx: Knex.Transaction, id: string): Promise<boolean> {
    const row = await trx('firewall_sets')
      .where({ id })
      .whereNull('deleted_at')
      .forUpdate()
      .first();
    return row !== undefined;
  }

  private async touched(
    trx: Knex.Transaction,
    id: string,
    actor: string,
    action: 'add' | 'remove',
    elements: string[],
    hosts: string[],
  ): Promise<void> {
    await trx('firewall_sets').where({ id }).update({ updated_at: trx.fn.now() });
    await this.event(trx, id, actor, action, elements);
    await this.work.bump(trx, hosts);
  }

  async events(id: string): Promise<SetEvent[]> {
    const rows = await this.knex('firewall_set_events').where({ set_id: id }).orderBy('id');
    return rows.map(
      (r: {
        id: string;
        at: Date;
        actor: string;
        action: SetEvent['action'];
        elements: unknown;
      }) => ({
        id: Number(r.id),
        at: new Date(r.at),
        actor: r.actor,
        action: r.action,
        elements: (typeof r.elements === 'string'
          ? JSON.parse(r.elements)
          : r.elements) as string[],
      }),
    );
  }
}
