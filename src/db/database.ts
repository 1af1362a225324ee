import { mkdirSync } from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { migrationSource } from './migrations/index.ts';
import { openPglite, PgliteClient } from './pglite.ts';

export type Backend = 'postgres' | 'pglite';

export interface Database {
  knex: Knex;
  backend: Backend;
  /** Postgres connection string, for dedicated (non-pooled) connections such as lock holders. */
  url: string | undefined;
  close(): Promise<void>;
}

// timestamptz comes back as Date and bigint counts as numbers, on both backends.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export interface DatabaseOptions {
  databaseUrl: string | undefined;
  /** Where PGlite keeps its files; `memory://` for a throwaway database. */
  dataDir: string;
  poolMax?: number;
}

export function openDatabase(opts: DatabaseOptions): Database {
  if (opts.databaseUrl) {
    const knex = knexFactory({
      client: 'pg',
      connection: opts.databaseUrl,
      pool: { min: 0, max: opts.poolMax ?? 10 },
      migrations: { migrationSource },
    });
    return { knex, backend: 'postgres', url: opts.databaseUrl, close: () => knex.destroy() };
  }
  let dataDir: string | undefined;
  if (opts.dataDir !== 'memory://') {
    dataDir = path.join(opts.dataDir, 'pgdata');
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  }
  const knex = knexFactory({
    client: PgliteClient,
    dialect: 'postgres',
    // Opened on first use (pglite.ts): a new data directory is created out of process first.
    connection: { dataDir } as Knex.StaticConnectionConfig,
    migrations: { migrationSource },
  });
  return { knex, backend: 'pglite', url: undefined, close: () => knex.destroy() };
}

export async function migrateToLatest(db: Database): Promise<void> {
  if (db.backend === 'pglite') await openPglite(db.knex);
  await db.knex.migrate.latest();
}

export async function pingDatabase(db: Database): Promise<void> {
  await db.knex.raw('select 1');
}
