import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { migrateToLatest, openDatabase, type Database } from '../../../src/db/database.ts';
import { migrationSource } from '../../../src/db/migrations/index.ts';
import { PGLITE_SETTINGS } from '../../../src/db/pglite.ts';
import { spawnServer, type ServerProcess } from '../../helpers/server-process.ts';

// The embedded database's files are created out of process on a first start (src/db/pglite.ts):
// these check that a first start and the starts after it behave as they always did.

const dirs: string[] = [];
const open: Database[] = [];
const servers: ServerProcess[] = [];

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'routeplane-pglite-dir-'));
  dirs.push(dir);
  return dir;
}

function openOn(dataDir: string): Database {
  const db = openDatabase({ databaseUrl: undefined, dataDir });
  open.push(db);
  return db;
}

async function closeAll(): Promise<void> {
  await Promise.all(open.splice(0).map((db) => db.close().catch(() => undefined)));
}

afterAll(async () => {
  await Promise.all(servers.map((s) => s.kill()));
  await closeAll();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const ALL_MIGRATIONS = (await migrationSource.getMigrations([])).map((m) =>
  typeof m === 'string' ? m : (m as { name: string }).name,
);

const migrationRows = (db: Database) =>
  db.knex('knex_migrations').select('name', 'batch').orderBy('id') as Promise<
    { name: string; batch: number }[]
  >;

// A first start runs initdb, which takes half a minute on a busy 2-core machine.
describe('the embedded database in a data directory', { timeout: 180_000 }, () => {
  let dataDir: string;

  it('when it is opened on a fresh data dir, then the database is created, every migration runs, and no scratch dir is left', async () => {
    dataDir = await freshDir();
    const db = openOn(dataDir);
    await migrateToLatest(db);
    const pgdata = path.join(dataDir, 'pgdata');
    expect(existsSync(path.join(pgdata, 'PG_VERSION'))).toBe(true);
    expect((await stat(pgdata)).mode & 0o777).toBe(0o700);
    expect(await readdir(dataDir)).toEqual(['pgdata']);
    expect(await migrationRows(db)).toEqual(ALL_MIGRATIONS.map((name) => ({ name, batch: 1 })));
    const { rows } = (await db.knex.raw('show shared_buffers')) as {
      rows: { shared_buffers: string }[];
    };
    expect(rows[0]!.shared_buffers).toBe(PGLITE_SETTINGS.shared_buffers);
    await db.knex.raw('create table probe (note text)');
    await db.knex('probe').insert({ note: 'written on the first start' });
    await closeAll();
  });

  it('when it is opened again on the same dir, then the data is there and no migration runs twice', async () => {
    const db = openOn(dataDir);
    await migrateToLatest(db);
    expect(await migrationRows(db)).toEqual(ALL_MIGRATIONS.map((name) => ({ name, batch: 1 })));
    expect(await db.knex('probe').select('note')).toEqual([{ note: 'written on the first start' }]);
    await closeAll();
  });

  it('when a killed first start left its scratch dir behind, then the next start removes it and creates the database', async () => {
    const dir = await freshDir();
    // A pid that cannot be running: above the kernel's pid_max ceiling (2^22).
    const abandoned = path.join(dir, 'pgdata.init-4194305-1');
    await mkdir(abandoned);
    await writeFile(path.join(abandoned, 'half-written'), 'x');
    const db = openOn(dir);
    await migrateToLatest(db);
    expect(await readdir(dir)).toEqual(['pgdata']);
    expect(existsSync(path.join(dir, 'pgdata', 'PG_VERSION'))).toBe(true);
    await closeAll();
  });

  it('when the database dir holds files but no database, then opening fails with a clear error and leaves them alone', async () => {
    const dir = await freshDir();
    await mkdir(path.join(dir, 'pgdata'));
    await writeFile(path.join(dir, 'pgdata', 'something'), 'keep me');
    const db = openOn(dir);
    await expect(migrateToLatest(db)).rejects.toThrow(
      `${path.join(dir, 'pgdata')} is not empty but holds no database (no PG_VERSION)`,
    );
    expect(await readdir(path.join(dir, 'pgdata'))).toEqual(['something']);
    expect(await readdir(dir)).toEqual(['pgdata']);
    await closeAll();
  });
});

describe('the server on the embedded default', () => {
  it(
    'when it starts on a fresh data dir, stops, and starts again on the same dir, then both starts are ready and serve requests',
    { timeout: 300_000 },
    async () => {
      const dataDir = await freshDir();
      const first = await spawnServer({ DATA_DIR: dataDir });
      servers.push(first);
      const ready = await first.request('GET', '/readyz');
      expect(ready.body).toMatchObject({ database: { ok: true, backend: 'pglite' } });
      expect((await first.request('GET', '/v1/hosts')).status).toBe(200);
      await first.stop();
      expect(first.exitCode()).toBe(0);
      expect(existsSync(path.join(dataDir, 'pgdata', 'PG_VERSION'))).toBe(true);

      const second = await spawnServer({ DATA_DIR: dataDir });
      servers.push(second);
      const again = await second.request('GET', '/readyz');
      expect(again.body).toMatchObject({ database: { ok: true, backend: 'pglite' } });
      expect((await second.request('GET', '/v1/hosts')).status).toBe(200);
      await second.stop();
      expect(second.exitCode()).toBe(0);
      expect((await readdir(dataDir)).filter((n) => n.startsWith('pgdata.init-'))).toEqual([]);
    },
  );
});
