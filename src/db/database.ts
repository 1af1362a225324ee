import { mkdirSync } from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import pg from 'pg';
import { migrationSource } from './migrations/index.ts';

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
  let connection: { filename: string } | Record<string, never> = {};
  if (opts.dataDir !== 'memory://') {
    const filename = path.join(opts.dataDir, 'pgdata');
    mkdirSync(filename, { recursive: true, mode: 0o700 });
    connection = { filename };
  }
  const knex = knexFactory({
    client: ClientPgLite as unknown as typeof knexFactory.Client,
    dialect: 'postgres',
    connection,
    migrations: { migrationSource },
  });
  return { knex, backend: 'pglite', url: undefined, close: () => knex.destroy() };
}

export async function migrateToLatest(db: Database): Promise<void> {
  await db.knex.migrate.latest();
}

export async function pingDatabase(db: Database): Promise<void> {
  await db.knex.raw('select 1');
}
