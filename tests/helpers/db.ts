import { randomBytes } from 'node:crypto';
import pg from 'pg';
import {
  migrateToLatest,
  openDatabase,
  type Backend,
  type Database,
} from '../../src/db/database.ts';

/** The server tests use: TEST_DATABASE_URL names the maintenance database to create ours from. */
export const ADMIN_URL =
  process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export function urlFor(database: string): string {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${database}`;
  return u.toString();
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function postgresReachable(): Promise<boolean> {
  try {
    await admin((c) => c.query('select 1'));
    return true;
  } catch {
    return false;
  }
}

/**
 * postgres unless ROUTEPLANE_TEST_BACKEND=pglite (set by scripts/test.sh when, outside CI, no
 * Postgres is reachable). In CI an unreachable Postgres is an error, never a quiet fallback.
 */
export async function testBackend(): Promise<Backend> {
  if (process.env.ROUTEPLANE_TEST_BACKEND === 'pglite') {
    if (process.env.CI === 'true') throw new Error('CI must run the database tests on Postgres');
    return 'pglite';
  }
  if (!(await postgresReachable())) {
    throw new Error(
      `Postgres is not reachable at ${ADMIN_URL} (set ROUTEPLANE_TEST_BACKEND=pglite outside CI)`,
    );
  }
  return 'postgres';
}

const uniqueName = (prefix: string) => `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;

export async function prepareTemplateDatabase(): Promise<string> {
  const name = uniqueName('rp_template');
  await admin((c) => c.query(`create database ${name}`));
  const db = openDatabase({ databaseUrl: urlFor(name), dataDir: 'memory://', poolMax: 1 });
  await migrateToLatest(db);
  await db.close();
  return name;
}

export async function dropTemplateDatabase(name: string): Promise<void> {
  await admin((c) => c.query(`drop database if exists ${name} with (force)`));
}

export interface TestDatabase {
  db: Database;
  url: string | undefined;
  /** Closes the pool (if still open) and drops the database. */
  drop(): Promise<void>;
}

/** A migrated database of this test file's own: a clone of the template, or in-memory PGlite. */
export async function createTestDatabase(
  template: string | null,
  backend?: Backend,
): Promise<TestDatabase> {
  if (backend === 'pglite' || !template) {
    const db = openDatabase({ databaseUrl: undefined, dataDir: 'memory://' });
    await migrateToLatest(db);
    return { db, url: undefined, drop: () => db.close().catch(() => undefined) };
  }
  const name = uniqueName('rp_test');
  await admin((c) => c.query(`create database ${name} template ${template}`));
  const url = urlFor(name);
  const db = openDatabase({ databaseUrl: url, dataDir: 'memory://' });
  return {
    db,
    url,
    drop: async () => {
      await db.close().catch(() => undefined);
      await admin((c) => c.query(`drop database if exists ${name} with (force)`));
    },
  };
}
