import pg from 'pg';
import type { Database } from '../db/database.ts';

// Advisory-lock namespace for "a run is applying this host" (ASCII "rpHO").
const HOST_LOCK_CLASS = 0x7270484f;

/** The hosts a run may apply, held until `release()`; hosts busy elsewhere are left out. */
export interface HostLease {
  hosts: string[];
  release(): Promise<void>;
}

/** At most one apply run per host at a time, across every routeplane process. */
export interface HostLocks {
  acquire(hosts: string[]): Promise<HostLease>;
}

/**
 * Postgres: a dedicated connection (never a pooled one) takes session advisory locks for the
 * hosts and is closed in `release()`, which frees them; if the process dies, so does the
 * connection and with it the locks.
 */
export class PostgresHostLocks implements HostLocks {
  constructor(private readonly url: string) {}

  async acquire(hosts: string[]): Promise<HostLease> {
    const client = new pg.Client({ connectionString: this.url });
    client.on('error', () => undefined);
    await client.connect();
    try {
      const { rows } = await client.query<{ host: string; locked: boolean }>(
        `select h as host, pg_try_advisory_lock($1, hashtext(h)) as locked
           from unnest($2::text[]) as h`,
        [HOST_LOCK_CLASS, hosts],
      );
      return {
        hosts: rows.filter((r) => r.locked).map((r) => r.host),
        release: () => client.end().catch(() => undefined),
      };
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  }
}

/** PGlite: one process owns the data directory, so an in-process set is the whole truth. */
export class InProcessHostLocks implements HostLocks {
  private readonly held = new Set<string>();

  async acquire(hosts: string[]): Promise<HostLease> {
    const mine = hosts.filter((h) => !this.held.has(h));
    for (const h of mine) this.held.add(h);
    return {
      hosts: mine,
      release: async () => {
        for (const h of mine) this.held.delete(h);
      },
    };
  }
}

export function hostLocksFor(db: Pick<Database, 'backend' | 'url'>): HostLocks {
  return db.backend === 'postgres' && db.url
    ? new PostgresHostLocks(db.url)
    : new InProcessHostLocks();
}
