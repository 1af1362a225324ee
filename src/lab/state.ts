import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from './errors.ts';
import { LAB_ID_PATTERN, assertLabId, resolveRoot } from './naming.ts';
import { labPaths } from './paths.ts';
import { isAlive } from './procs.ts';
import type { Lab } from './types.ts';

const PENDING_PREFIX = '.new-';

export async function ensureRoot(root: string): Promise<void> {
  await mkdir(root, { recursive: true, mode: 0o700 });
}

async function entries(root: string): Promise<{ name: string; isDir: boolean }[]> {
  try {
    const found = await readdir(root, { withFileTypes: true });
    return found.map((e) => ({ name: e.name, isDir: e.isDirectory() }));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Create <root>/<id> with owner.pid already inside. The directory is built under a temporary
 * name and renamed into place, so a concurrent `--stale` sweep never sees a lab dir without an
 * owner, and two creators of the same id cannot both succeed. Returns false if the id is taken.
 */
export async function claimLabDir(root: string, id: string, ownerPid: number): Promise<boolean> {
  const pending = await mkdtemp(path.join(root, `${PENDING_PREFIX}${id}-`));
  await writeFile(labPaths(pending).ownerPid, `${ownerPid}\n`);
  try {
    await rename(pending, path.join(root, id));
    return true;
  } catch (err) {
    await rm(pending, { recursive: true, force: true });
    if (errnoCode(err) === 'EEXIST' || errnoCode(err) === 'ENOTEMPTY') return false;
    throw err;
  }
}

export async function listLabIds(root: string): Promise<string[]> {
  return (await entries(root))
    .filter((e) => e.isDir && LAB_ID_PATTERN.test(e.name))
    .map((e) => e.name);
}

/** Half-claimed directories (see claimLabDir) left by a process that died mid-claim. */
export async function listPendingDirs(root: string): Promise<string[]> {
  return (await entries(root))
    .filter((e) => e.isDir && e.name.startsWith(PENDING_PREFIX))
    .map((e) => path.join(root, e.name));
}

export async function readOwnerPid(dir: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(labPaths(dir).ownerPid, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

export async function writeLabJson(lab: Lab): Promise<void> {
  await writeFile(labPaths(lab.dir).labJson, `${JSON.stringify(lab, null, 2)}\n`);
}

/** The Lab recorded by labUp, e.g. for a process that did not create it. */
export async function readLab(id: string, root?: string): Promise<Lab> {
  const dir = path.join(resolveRoot(root), assertLabId(id));
  return JSON.parse(await readFile(labPaths(dir).labJson, 'utf8')) as Lab;
}

export interface LabSummary {
  id: string;
  dir: string;
  ownerPid: number | undefined;
  ownerAlive: boolean;
  /** Undefined while the lab is being built, or if it broke before lab.json was written. */
  lab: Lab | undefined;
}

export async function listLabs(root?: string): Promise<LabSummary[]> {
  const resolved = resolveRoot(root);
  const ids = (await listLabIds(resolved)).sort();
  return Promise.all(
    ids.map(async (id) => {
      const dir = path.join(resolved, id);
      const ownerPid = await readOwnerPid(dir);
      const lab = await readLab(id, resolved).catch(() => undefined);
      return {
        id,
        dir,
        ownerPid,
        ownerAlive: ownerPid !== undefined && (await isAlive(ownerPid)),
        lab,
      };
    }),
  );
}
