import { existsSync } from 'node:fs';
import { link, mkdir, readFile, realpath, unlink, writeFile } from 'node:fs/promises';
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

// Directories this process holds: the pid file alone cannot tell a second server in this same
// process (which must be refused) from a stale file whose pid was reused by us (taken over).
const heldHere = new Set<string>();

/**
 * One process per DATA_DIR: PGlite's files would be corrupted by two writers. A pid file
 * (rather than an mtime-based lock) lets a restart after kill -9 take over at once.
 */
export async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const key = await realpath(dir);
  if (heldHere.has(key)) {
    throw new DataDirLockedError(`DATA_DIR ${dir} is in use by this process (${process.pid})`);
  }
  heldHere.add(key);
  let locked = false;
  const lockFile = path.join(dir, 'routeplane.pid');
  const candidate = `${lockFile}.${process.pid}`;
  try {
    await writeFile(candidate, String(process.pid), { mode: 0o600 });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await link(candidate, lockFile);
        locked = true;
        return async () => {
          await unlink(lockFile).catch(() => undefined);
          heldHere.delete(key);
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
    if (!locked) heldHere.delete(key);
    if (existsSync(candidate)) await unlink(candidate).catch(() => undefined);
  }
}
