import { existsSync } from 'node:fs';
import { link, mkdir, readFile, realpath, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { processAlive } from '../shared/process-alive.ts';

export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError';
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
    for (let attempt = 0; attempt < 5; attempt++) {
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
      const holder = await pidIn(lockFile);
      if (holder && holder !== process.pid && processAlive(holder)) {
        throw new DataDirLockedError(`DATA_DIR ${dir} is in use by process ${holder}`);
      }
      await removeStale(lockFile, holder);
    }
    throw new DataDirLockedError(`DATA_DIR ${dir} could not be locked`);
  } finally {
    if (!locked) heldHere.delete(key);
    if (existsSync(candidate)) await unlink(candidate).catch(() => undefined);
  }
}

async function pidIn(file: string): Promise<number> {
  return Number((await readFile(file, 'utf8').catch(() => '')).trim());
}

/**
 * Takes a dead holder's pid file away without ever deleting a live one: two processes that
 * both saw the same dead holder race here, and the loser of that race would otherwise unlink
 * the lock the winner has just linked. The file is moved aside first (only one mover gets
 * it), and put back if it turns out to be someone's fresh lock rather than the stale one.
 */
async function removeStale(lockFile: string, stalePid: number): Promise<void> {
  const aside = `${lockFile}.stale.${process.pid}`;
  try {
    await rename(lockFile, aside);
  } catch {
    return; // gone already: another process took it away
  }
  if ((await pidIn(aside)) !== stalePid) await link(aside, lockFile).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}
