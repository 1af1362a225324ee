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
export class InstancePresence {
  readonly id = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private client: pg.Client | null = null;
  /**
   * This instance's run workspaces (per data directory and instance), once claimed at
   * start-up; runs started before that (none in the server) use the system temp dir.
   */
  workspaceDir: string | null = null;

  constructor(private readonly db: Pick<Database, 'backend' | 'url'>) {}

  async announce(): Promise<void> {
    if (this.db.backend !== 'postgres') return;
    this.client = new pg.Client({ connectionString: this.db.url });
    this.client.on('error', () => undefined);
    await this.client.connect();
    await this.client.query('select pg_advisory_lock($1, hashtext($2))', [PRESENCE_CLASS, this.id]);
  }

  /** Of `owners`, the ones whose process is gone. */
  async deadAmong(owners: string[]): Promise<string[]> {
    if (this.db.backend !== 'postgres') return owners.filter((o) => o !== this.id);
    const dead: string[] = [];
    for (const owner of owners) {
      if (owner === this.id) continue;
      const { rows } = await this.client!.query<{ free: boolean }>(
        'select pg_try_advisory_lock($1, hashtext($2)) as free',
        [PRESENCE_CLASS, owner],
      );
      if (rows[0]?.free) {
        await this.client!.query('select pg_advisory_unlock($1, hashtext($2))', [
          PRESENCE_CLASS,
          owner,
        ]);
        dead.push(owner);
      }
    }
    return dead;
  }

  /** How many other routeplane processes share this database now. */
  async othersAlive(): Promise<number> {
    if (this.db.backend !== 'postgres' || !this.client) return 0;
    // Two-key advisory locks show in pg_locks as classid/objid with objsubid 2.
    const { rows } = await this.client.query<{ n: number }>(
      `select count(*)::int as n from pg_locks
        where locktype = 'advisory' and granted and objsubid = 2 and classid = $1::int::oid
          and database = (select oid from pg_database where datname = current_database())
          and pid <> pg_backend_pid()`,
      [PRESENCE_CLASS],
    );
    return rows[0]?.n ?? 0;
  }

  async withdraw(): Promise<void> {
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }
}
