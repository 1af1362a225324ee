import { isIP } from 'node:net';
import type { Knex } from 'knex';
import { knexSql } from '../reconciler/sql.ts';

/** A replica whose heartbeat is older than this is not asked to keep its management. */
const LIVE_WITHIN_S = 60;

/**
 * Every replica's source address towards each host, shared through Postgres: a host's
 * firewall accepts management from each live replica, not only from the one that applied it,
 * so any replica can take the host over. Each process records what it computed
 * (ManagementAddresses) and writes only what changed since it last did.
 */
export class ReplicaAddresses {
  private readonly recorded = new Map<string, string>();

  constructor(
    private readonly knex: Knex,
    private readonly instanceId: string,
    /** Off on the embedded database: one process is the only replica. */
    private readonly shared: boolean,
  ) {}

  async record(addresses: Record<string, string>): Promise<void> {
    if (!this.shared) return;
    const changed = Object.entries(addresses).filter(([h, a]) => this.recorded.get(h) !== a);
    if (changed.length === 0) return;
    await knexSql(this.knex)(
      `insert into instance_addresses (instance_id, host, address)
         select ?, h, a from jsonb_each_text(?::jsonb) as t(h, a)
       on conflict (instance_id, host) do update set address = excluded.address, updated_at = now()`,
      [this.instanceId, JSON.stringify(Object.fromEntries(changed))],
    );
    for (const [h, a] of changed) this.recorded.set(h, a);
  }

  /** Per host, the addresses live replicas reach it from (this one's included once recorded). */
  async of(hosts: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (!this.shared || hosts.length === 0) return out;
    const rows = await knexSql(this.knex)<{ host: string; address: string }>(
      `select distinct a.host, a.address from instance_addresses a
         join instances i on i.id = a.instance_id
        where a.host = any(select jsonb_array_elements_text(?::jsonb))
          and i.heartbeat_at > now() - make_interval(secs => ?)
        order by a.host, a.address`,
      [JSON.stringify(hosts), LIVE_WITHIN_S],
    );
    // Rendered into the host's table: only what is an address, whatever the row holds.
    for (const r of rows.filter((row) => isIP(row.address) !== 0)) {
      out.set(r.host, [...(out.get(r.host) ?? []), r.address]);
    }
    return out;
  }
}
