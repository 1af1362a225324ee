import pg from 'pg';
import type { Database } from '../db/database.ts';
import type { ClaimedHost, HostWorkStore } from './host-work-store.ts';
import { clientSql, knexSql } from './sql.ts';

// Advisory-lock namespace for "a run is applying this host" (ASCII "rpHO").
const HOST_LOCK_CLASS = 0x7270484f;

/** Hosts held for one run, until `release()`. */
export interface HostLease {
  hosts: ClaimedHost[];
  /**
   * Called at most once if the hold is lost before `release()` (the lock connection died):
   * another replica may take the hosts, so the runs that depended on it must stop.
   */
  onLost(fn: (reason: string) => void): void;
  release(): Promise<void>;
}

/** Hosts locked for a run outside the work queue (removal on shutdown). */
export interface HostLock {
  hosts: string[];
  release(): Promise<void>;
}

/** At most one run per host at a time, across every routeplane process. */
export interface HostClaims {
  /** Claims up to `max` due hosts (with `converge`, hosts due for convergence too). */
  claim(max: number, converge: boolean): Promise<HostLease>;
  /** Locks exactly these hosts where free, whatever their work. */
  lock(hosts: string[]): Promise<HostLock>;
}

const noLoss = { onLost: () => undefined };
const EMPTY: HostLease = { hosts: [], ...noLoss, release: async () => undefined };
/** How often an idle replica checks for claims whose holder died (each check connects). */
const ORPHAN_CHECK_MS = 5_000;

/**
 * Postgres: each claim opens a dedicated connection (never a pooled one) that claims due rows
 * with SKIP LOCKED and takes a session advisory lock per host, held until `release()` closes
 * it. Claimed rows carry the owner's name, so other claimers skip them without contention;
 * a claim whose lock is free belongs to a holder that is gone and is released (orphan check).
 * The connection has TCP keepalive on and its error and end events end the lease at once.
 */
export class PostgresHostClaims implements HostClaims {
  private lastOrphanCheck = 0;

  constructor(
    private readonly url: string,
    private readonly work: HostWorkStore,
    private readonly owner: string,
  ) {}

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.url,
      keepAlive: true,
      keepAliveInitialDelayMillis: 1000,
    });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  }

  async claim(max: number, converge: boolean): Promise<HostLease> {
    const worth = await this.work.claimWorth(this.owner, converge);
    const orphanCheckDue = Date.now() - this.lastOrphanCheck >= ORPHAN_CHECK_MS;
    if (!worth.due && !(worth.heldByOthers && orphanCheckDue)) return EMPTY;
    this.lastOrphanCheck = Date.now();
    const client = await this.connect();
    const sql = clientSql(client);
    let claimed: ClaimedHost[] = [];
    try {
      await sql('begin');
      await this.work.releaseOrphans(sql, await this.orphans(sql));
      const candidates = await this.work.candidates(sql, max, converge);
      const locked = await this.tryLocks(sql, candidates);
      claimed = await this.work.markClaimed(sql, locked, this.owner);
      await sql('commit');
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (claimed.length === 0) {
      await client.end().catch(() => undefined);
      return EMPTY;
    }
    return this.lease(client, claimed);
  }

  async lock(hosts: string[]): Promise<HostLock> {
    const client = await this.connect();
    try {
      const locked = await this.tryLocks(clientSql(client), hosts);
      return { hosts: locked, release: () => client.end().catch(() => undefined) };
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  }

  private async tryLocks(sql: ReturnType<typeof clientSql>, hosts: string[]): Promise<string[]> {
    if (hosts.length === 0) return [];
    const rows = await sql<{ host: string; locked: boolean }>(
      `select h as host, pg_try_advisory_lock(?::int, hashtext(h)) as locked
         from jsonb_array_elements_text(?::jsonb) as t(h)`,
      [HOST_LOCK_CLASS, JSON.stringify(hosts)],
    );
    return rows.filter((r) => r.locked).map((r) => r.host);
  }

  /** Claims of others whose host lock is free: their holder's connection is gone. */
  private async orphans(sql: ReturnType<typeof clientSql>) {
    const claimed = await this.work.claimedByOthers(sql, this.owner);
    if (claimed.length === 0) return [];
    const free = new Set(
      await this.tryLocks(
        sql,
        claimed.map((c) => c.host),
      ),
    );
    if (free.size > 0) {
      await sql(
        `select pg_advisory_unlock(?::int, hashtext(h)) from jsonb_array_elements_text(?::jsonb) as t(h)`,
        [HOST_LOCK_CLASS, JSON.stringify([...free])],
      );
    }
    return claimed.filter((c) => free.has(c.host));
  }

  private lease(client: pg.Client, hosts: ClaimedHost[]): HostLease {
    let released = false;
    let lostReason: string | null = null;
    const listeners: ((reason: string) => void)[] = [];
    const lose = (reason: string) => {
      if (released || lostReason !== null) return;
      lostReason = reason;
      for (const fn of listeners) fn(reason);
    };
    client.on('error', (err) => lose(`host lock connection failed: ${err.message}`));
    client.on('end', () => lose('host lock connection closed'));
    return {
      hosts,
      onLost(fn) {
        if (lostReason !== null) fn(lostReason);
        else listeners.push(fn);
      },
      release: async () => {
        released = true;
        await client.end().catch(() => undefined);
      },
    };
  }
}

/** PGlite: one process owns the database, so the claim rows and an in-process set suffice. */
export class InProcessHostClaims implements HostClaims {
  private readonly held = new Set<string>();

  constructor(
    private readonly db: Pick<Database, 'knex'>,
    private readonly work: HostWorkStore,
    private readonly owner: string,
  ) {}

  async claim(max: number, converge: boolean): Promise<HostLease> {
    const claimed = await this.db.knex.transaction(async (trx) => {
      const sql = knexSql(trx);
      const free = (await this.work.candidates(sql, max, converge)).filter(
        (h) => !this.held.has(h),
      );
      return this.work.markClaimed(sql, free, this.owner);
    });
    for (const c of claimed) this.held.add(c.host);
    return {
      hosts: claimed,
      ...noLoss,
      release: async () => {
        for (const c of claimed) this.held.delete(c.host);
      },
    };
  }

  async lock(hosts: string[]): Promise<HostLock> {
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

export function hostClaimsFor(
  db: Pick<Database, 'backend' | 'url' | 'knex'>,
  work: HostWorkStore,
  owner: string,
): HostClaims {
  return db.backend === 'postgres' && db.url
    ? new PostgresHostClaims(db.url, work, owner)
    : new InProcessHostClaims(db, work, owner);
}
