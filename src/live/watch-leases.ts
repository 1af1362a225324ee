import type { Knex } from 'knex';

/**
 * Which replica watches which host: a lease per host, renewed by its holder and taken over by
 * another replica once it lapses (its holder died or lost the database). One watcher per host
 * across the fleet of replicas, never two for long.
 */
export class WatchLeases {
  constructor(
    private readonly knex: Knex,
    private readonly owner: string,
    private readonly ttlMs: number,
    /** host_watch_leases, or host_probe_leases for the failover probers. */
    private readonly table: 'host_watch_leases' | 'host_probe_leases' = 'host_watch_leases',
  ) {}

  /** Renews the leases this replica holds among `hosts` and takes the free or lapsed ones. */
  async claim(hosts: string[]): Promise<Set<string>> {
    if (hosts.length === 0) return new Set();
    const { rows } = await this.knex.raw<{ rows: { host: string }[] }>(
      `insert into ?? as l (host, owner, expires_at)
         select h, ?, now() + (? * interval '1 millisecond')
           from jsonb_array_elements_text(?::jsonb) as t(h)
       on conflict (host) do update set owner = excluded.owner, expires_at = excluded.expires_at
         where l.owner = excluded.owner or l.expires_at < now()
       returning host`,
      [this.table, this.owner, this.ttlMs, JSON.stringify(hosts)],
    );
    return new Set(rows.map((r) => r.host));
  }

  /**
   * Whether this replica still holds `host`'s lease, read in the caller's transaction: a
   * decision taken by a replica whose lease lapsed (another took the host over) is not recorded.
   */
  async holds(host: string, trx: Knex | Knex.Transaction = this.knex): Promise<boolean> {
    const row = await trx(this.table)
      .where({ host, owner: this.owner })
      .andWhere('expires_at', '>', trx.fn.now())
      .first('host');
    return row !== undefined;
  }

  /** Lets go of these hosts at once (shutdown, or hosts that left the inventory). */
  async release(hosts: string[]): Promise<void> {
    if (hosts.length === 0) return;
    await this.knex(this.table).where({ owner: this.owner }).whereIn('host', hosts).delete();
  }
}
