import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import { processAlive } from '../shared/process-alive.ts';

/**
 * Postgres settings for the embedded database, on top of PGlite's own. PGlite's initdb writes
 * shared_buffers = 128MB, and the single-user backend touches all of it at start, so it is held
 * for the life of the process; routeplane's tables are a few MiB, and pages beyond the buffer
 * pool are read back from the OS page cache. max_connections sizes per-backend shared arrays,
 * but a PGlite database has exactly one backend. Measured in bench/memory.ts.
 */
export const PGLITE_SETTINGS: Readonly<Record<string, string>> = {
  shared_buffers: '32MB',
  max_connections: '10',
};

export function pgliteStartParams(): string[] {
  return [
    ...PGlite.defaultStartParams,
    ...Object.entries(PGLITE_SETTINGS).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
  ];
}

const execFileAsync = promisify(execFile);
const INIT_PREFIX = 'pgdata.init-';

// Plain CommonJS for `node -e`: the child needs no TypeScript loader, whatever runs the parent.
const INITDB_CHILD = `
const [pglite, dir] = process.argv.slice(1);
const { PGlite } = require(pglite);
(async () => {
  const db = new PGlite(dir);
  await db.waitReady;
  await db.close();
})().catch((err) => {
  process.stderr.write(String((err && err.stack) || err) + '\\n');
  process.exit(1);
});
`;

export function hasDatabase(pgdata: string): boolean {
  return existsSync(path.join(pgdata, 'PG_VERSION'));
}

/**
 * Creates the embedded database's files (initdb) in a child process when `pgdata` holds none.
 * Creating them in-process leaves the server holding some 500 MiB more for its whole life: two
 * extra WASM instances (initdb's and a scratch Postgres), their memories and a tar of the new
 * directory, which V8 does not hand back to the OS. A child's memory ends with it.
 * The child works in a sibling directory that is renamed into place only once complete, so an
 * interrupted first start never leaves a half-made database that looks like one.
 */
export async function ensurePgliteDataDir(pgdata: string): Promise<void> {
  if (hasDatabase(pgdata)) return;
  // Checked before initdb too, which takes a while: the rename below would refuse anyway.
  if ((await readdir(pgdata).catch(() => [])).length > 0) throw notEmpty(pgdata);
  const parent = path.dirname(pgdata);
  await removeAbandonedInits(parent);
  const scratch = path.join(parent, `${INIT_PREFIX}${process.pid}-${Date.now()}`);
  const pglite = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  try {
    // A database's files are its owner's alone, as initdb itself insists on real Postgres.
    await mkdir(scratch, { mode: 0o700 });
    await execFileAsync(process.execPath, ['-e', INITDB_CHILD, pglite, scratch], {
      env: { PATH: process.env.PATH, LANG: process.env.LANG ?? 'C.UTF-8' },
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    await rm(scratch, { recursive: true, force: true });
    const e = err as Error & { stderr?: string };
    throw new Error(
      `could not create the embedded database in ${pgdata}: ${e.stderr || e.message}`,
    );
  }
  if (!hasDatabase(scratch)) {
    await rm(scratch, { recursive: true, force: true });
    throw new Error(
      `could not create the embedded database in ${pgdata}: initdb made no PG_VERSION`,
    );
  }
  try {
    // rename(2) replaces an empty directory (the one openDatabase made) but never a full one.
    await rename(scratch, pgdata);
  } catch (err) {
    await rm(scratch, { recursive: true, force: true });
    // Someone else's initdb got there first (tests open a dir without the DATA_DIR lock).
    if (hasDatabase(pgdata)) return;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') throw notEmpty(pgdata);
    throw err;
  }
}

const notEmpty = (pgdata: string) =>
  new Error(
    `${pgdata} is not empty but holds no database (no PG_VERSION): move it away to start afresh`,
  );

/** Scratch directories of first starts that were killed: their process is gone. */
async function removeAbandonedInits(parent: string): Promise<void> {
  const entries = await readdir(parent).catch(() => [] as string[]);
  for (const name of entries) {
    if (!name.startsWith(INIT_PREFIX)) continue;
    const pid = Number(name.slice(INIT_PREFIX.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) continue;
    await rm(path.join(parent, name), { recursive: true, force: true });
  }
}

interface PgliteConnection {
  /** A directory on disk, or undefined for an in-memory database. */
  dataDir: string | undefined;
}

type RawClient = InstanceType<typeof knexFactory.Client> & {
  config: { connection: PgliteConnection };
  pglite: PGlite | undefined;
};

const Base = ClientPgLite as unknown as new (config: unknown) => RawClient;

/**
 * knex-pglite starts PGlite in knex's constructor, synchronously, so its initdb would run in
 * this process before we could do anything about it. This client defers opening to the first
 * connection, where the data directory can be created out of process first.
 */
class LazyPgliteClient extends Base {
  private opening: Promise<PGlite> | undefined;

  _driver(): void {
    this.pglite = undefined;
  }

  _acquireOnlyConnection(): Promise<PGlite> {
    return this.ready();
  }

  ready(): Promise<PGlite> {
    return (this.opening ??= this.open());
  }

  private async open(): Promise<PGlite> {
    const { dataDir } = this.config.connection;
    if (dataDir) await ensurePgliteDataDir(dataDir);
    const db = new PGlite(dataDir ?? 'memory://', { startParams: pgliteStartParams() });
    try {
      await db.waitReady;
    } catch (err) {
      this.opening = undefined;
      throw err;
    }
    this.pglite = db;
    return db;
  }

  override async destroyRawConnection(connection: PGlite): Promise<void> {
    this.opening = undefined;
    this.pglite = undefined;
    await connection.close();
  }
}

/**
 * Opens the embedded database now, outside knex's pool: creating a new one can outlast the
 * pool's acquire timeout (60 s) on a busy machine, which would fail the first start.
 */
export async function openPglite(knex: Knex): Promise<void> {
  const client = knex.client as unknown;
  if (client instanceof LazyPgliteClient) await client.ready();
}

export const PgliteClient = LazyPgliteClient as unknown as typeof knexFactory.Client;
