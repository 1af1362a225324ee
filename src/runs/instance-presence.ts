import { randomUUID } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import type { Database } from '../db/database.ts';

// Advisory-lock namespace for "this routeplane instance is alive" (ASCII "rpIN").
const PRESENCE_CLASS = 0x7270494e;

/**
 * Tells live routeplane processes from dead ones, so a starting replica can end the runs of a
 * crashed one without touching runs another live replica is executing. On Postgres each
 * instance holds an advisory lock on a dedicated connection for its lifetime: the lock
 * vanishes with the process. On PGlite only one process can open the data directory, so every
 * other owner is dead by construction.
 */
/** How often a live instance says so in its `instances` row. */
const HEARTBEAT_MS = 2_000;
/**
 * An instance whose heartbeat is younger than this counts as alive even when its presence
 * lock is gone: it may be reconnecting after a Postgres restart, and its runs go on meanwhile.
 */
const HEARTBEAT_GRACE_S = 12;
const RECONNECT_MAX_MS = 4_000;

/**
 * Tells live routeplane processes from dead ones, so a starting replica can end the runs of a
 * crashed one without touching runs another live replica is executing. On Postgres each
 * instance holds an advisory lock on a dedicated connection for its lifetime (the lock vanishes
 * with the process) and beats a heartbeat row; an instance is dead only when both are gone (so the runs of a
 * crashed replica are ended within about HEARTBEAT_GRACE_S, by the periodic orphan sweep).
 * A lost connection is re-opened and the lock re-taken. On PGlite only one process can open
 * the data directory, so every other owner is dead by construction.
 */
export class InstancePresence {
  readonly id = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private client: pg.Client | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private withdrawn = false;
  /**
   * This instance's run workspaces (per data directory and instance), once claimed at
   * start-up; runs started before that (none in the server) use the system temp dir.
   */
  workspaceDir: string | null = null;

  constructor(private readonly db: Pick<Database, 'backend' | 'url'>) {}

  async announce(): Promise<void> {
    if (this.db.backend !== 'postgres') return;
    await this.register();
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private async register(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.db.url,
      keepAlive: true,
      keepAliveInitialDelayMillis: 1000,
    });
    client.on('error', () => undefined);
    await client.connect();
    try {
      await client.query('select pg_advisory_lock($1, hashtext($2))', [PRESENCE_CLASS, this.id]);
      await client.query(
        `insert into instances (id) values ($1)
         on conflict (id) do update set heartbeat_at = now()`,
        [this.id],
      );
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    client.on('end', () => {
      if (this.client === client) this.client = null;
      this.reconnect(500);
    });
    this.client = client;
  }

  /** Re-opens the presence connection after it was lost, backing off until it works. */
  private reconnect(delayMs: number): void {
    if (this.withdrawn || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.withdrawn || this.client) return;
      this.register().catch(() => this.reconnect(Math.min(delayMs * 2, RECONNECT_MAX_MS)));
    }, delayMs);
    this.reconnectTimer.unref();
  }

  private async beat(): Promise<void> {
    await this.client
      ?.query('update instances set heartbeat_at = now() where id = $1', [this.id])
      .catch(() => undefined);
  }

  /**
   * Of `owners`, the ones whose process is gone: presence lock free and heartbeat stale. While
   * this instance is itself reconnecting it cannot tell, and calls none dead.
   */
  async deadAmong(owners: string[]): Promise<string[]> {
    if (this.db.backend !== 'postgres') return owners.filter((o) => o !== this.id);
    const client = this.client;
    if (!client) return [];
    const dead: string[] = [];
    for (const owner of owners) {
      if (owner === this.id) continue;
      const { rows } = await client.query<{ free: boolean; fresh: boolean }>(
        `select pg_try_advisory_lock($1, hashtext($2)) as free,
                exists (select 1 from instances where id = $2
                          and heartbeat_at > now() - make_interval(secs => $3)) as fresh`,
        [PRESENCE_CLASS, owner, HEARTBEAT_GRACE_S],
      );
      if (rows[0]?.free) {
        await client.query('select pg_advisory_unlock($1, hashtext($2))', [PRESENCE_CLASS, owner]);
        if (!rows[0].fresh) dead.push(owner);
      }
    }
    return dead;
  }

  /**
   * How many other routeplane processes share this database now: those holding a presence
   * lock, or with a fresh heartbeat (one that is reconnecting still counts).
   */
  async othersAlive(): Promise<number> {
    if (this.db.backend !== 'postgres' || !this.client) return 0;
    // Two-key advisory locks show in pg_locks as classid/objid with objsubid 2.
    const { rows } = await this.client.query<{ locks: number; beats: number }>(
      `select (select count(*)::int from pg_locks
                where locktype = 'advisory' and granted and objsubid = 2 and classid = $1::int::oid
                  and database = (select oid from pg_database where datname = current_database())
                  and pid <> pg_backend_pid()) as locks,
              (select count(*)::int from instances
                where id <> $2 and heartbeat_at > now() - make_interval(secs => $3)) as beats`,
      [PRESENCE_CLASS, this.id, HEARTBEAT_GRACE_S],
    );
    return Math.max(rows[0]?.locks ?? 0, rows[0]?.beats ?? 0);
  }

  async withdraw(): Promise<void> {
    this.withdrawn = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const c = this.client;
    this.client = null;
    await c?.query('delete from instances where id = $1', [this.id]).catch(() => undefined);
    await c?.end().catch(() => undefined);
  }
}
