import { existsSync } from 'node:fs';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One process per DATA_DIR: PGlite's files would be corrupted by two writers. A pid file
 * (rather than an mtime-based lock) lets a restart after kill -9 take over at once.
 */
export async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const lockFile = path.join(dir, 'routeplane.pid');
  const candidate = `${lockFile}.${process.pid}`;
  await writeFile(candidate, String(process.pid), { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await link(candidate, lockFile);
        return async () => {
          await unlink(lockFile).catch(() => undefined);
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = Number((await readFile(lockFile, 'utf8').catch(() => '')).trim());
      if (holder && holder !== process.pid && alive(holder)) {
        throw new DataDirLockedError(`DATA_DIR ${dir} is in use by process ${holder}`);
      }
      await unlink(lockFile).catch(() => undefined);
    }
    throw new DataDirLockedError(`DATA_DIR ${dir} could not be locked`);
  } finally {
    if (existsSync(candidate)) await unlink(candidate).catch(() => undefined);
  }
}
