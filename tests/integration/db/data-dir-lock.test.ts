import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../../src/config.ts';
import { DataDirLockedError } from '../../../src/db/data-dir-lock.ts';
import { createLogger } from '../../../src/logger.ts';
import { startServer, type RunningServer } from '../../../src/server.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';
import { REPO, startTestServer, type TestServer } from '../../helpers/server.ts';

const databases: TestDatabase[] = [];

/** startServer on `dataDir` with a database of its own; resolves to the error if any. */
async function startOn(dataDir: string): Promise<RunningServer | Error> {
  const database = await createTestDatabase(inject('templateDatabase'));
  databases.push(database);
  const { db } = database;
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    API_TOKENS: 'admin:admin:lock-test-token-0',
    LOG_LEVEL: 'silent',
  });
  return startServer(config, { db, logger: createLogger('silent') }).catch(async (err: Error) => {
    await db.close().catch(() => undefined);
    return err;
  });
}

describe('the DATA_DIR lock', () => {
  let server: TestServer;
  const extra: RunningServer[] = [];
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterEach(async () => {
    await Promise.all(extra.splice(0).map((s) => s.stop()));
  });
  afterAll(async () => {
    await server?.close();
    await Promise.all(databases.map((d) => d.drop()));
  });
  const lockFile = () => path.join(server.dataDir, 'routeplane.pid');

  it('when a second server in the same process is started on a DATA_DIR in use, then it is refused with a clear error', async () => {
    const second = await startOn(server.dataDir);
    if (!(second instanceof Error)) extra.push(second);
    expect(second).toBeInstanceOf(DataDirLockedError);
    expect((second as Error).message).toBe(
      `DATA_DIR ${server.dataDir} is in use by this process (${process.pid})`,
    );
  });

  it('when the second server has been refused, then the first still holds the lock and answers', async () => {
    expect((await readFile(lockFile(), 'utf8')).trim()).toBe(String(process.pid));
    expect((await server.request('GET', '/v1/hosts')).status).toBe(200);
  });

  it('when another process is started on a DATA_DIR in use, then it exits 1 naming the directory and the holder', async () => {
    const result = await execa('node', ['--import', 'tsx', 'src/server.ts'], {
      cwd: REPO,
      env: {
        DATA_DIR: server.dataDir,
        PORT: '0',
        HOST: '127.0.0.1',
        DATABASE_URL: '',
        API_TOKENS: 'admin:admin:lock-test-token-0',
      },
      reject: false,
      timeout: 30_000,
    });
    expect(result.exitCode).toBe(1);
    const fatal = JSON.parse(result.stdout.split('\n').find((l) => l.includes('start_failed'))!);
    expect(fatal).toMatchObject({
      level: 60,
      event: 'server.start_failed',
      err: `DATA_DIR ${server.dataDir} is in use by process ${process.pid}`,
    });
    expect((await readFile(lockFile(), 'utf8')).trim()).toBe(String(process.pid));
  });

  describe('given a DATA_DIR of its own', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'routeplane-lock-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('when the server holding it stops, then the lock file is removed and a new server can take it', async () => {
      const first = await startOn(dir);
      if (first instanceof Error) throw first;
      await first.stop();
      await expect(readFile(path.join(dir, 'routeplane.pid'))).rejects.toThrow(/ENOENT/);
      const next = await startOn(dir);
      if (next instanceof Error) throw next;
      extra.push(next);
      expect((await fetch(`${next.url}/healthz`)).status).toBe(200);
    });

    it('when the lock file names a process that is gone, then a new server takes the DATA_DIR over', async () => {
      const gone = execa('true');
      await gone;
      await writeFile(path.join(dir, 'routeplane.pid'), String(gone.pid));
      const next = await startOn(dir);
      if (next instanceof Error) throw next;
      extra.push(next);
      expect((await readFile(path.join(dir, 'routeplane.pid'), 'utf8')).trim()).toBe(
        String(process.pid),
      );
    });

    it('when several processes race to take over a stale lock, then exactly one gets it', async () => {
      const racing = await mkdtemp(path.join(os.tmpdir(), 'routeplane-lock-race-'));
      try {
        const gone = execa('true');
        await gone;
        await writeFile(path.join(racing, 'routeplane.pid'), String(gone.pid));
        // Each contender holds what it got for a while, so every other one sees it alive.
        const contender = `
          import { lockDataDir } from './src/db/data-dir-lock.ts';
          try {
            await lockDataDir(${JSON.stringify(racing)});
            console.log('locked');
            await new Promise((r) => setTimeout(r, 3000));
          } catch (err) {
            console.log(err.name);
          }`;
        const results = await Promise.all(
          Array.from({ length: 6 }, () =>
            execa('node', ['--import', 'tsx', '--input-type=module', '-e', contender], {
              cwd: REPO,
              timeout: 30_000,
            }),
          ),
        );
        const outcomes = results.map((r) => r.stdout.trim()).sort();
        expect(outcomes).toEqual([...Array(5).fill('DataDirLockedError'), 'locked']);
      } finally {
        await rm(racing, { recursive: true, force: true });
      }
    });
  });
});
