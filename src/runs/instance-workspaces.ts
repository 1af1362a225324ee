import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../logger.ts';
import { closeSshMasters, signalGroup } from './process-reaper.ts';

const OWNER_FILE = 'owner';

/**
 * Where the run workspaces of one data directory live: `<tmp>/rp-<8 hex of the data dir's
 * path>`. Short on purpose: a run's SSH ControlPath (`<this>/<8>/rXXXXXX/cp/<40 hex>`, to
 * which ssh appends `.<16 random>` while it binds) must fit in a unix socket's 108 bytes.
 */
export function workspacesRoot(dataDir: string, tmpDir = os.tmpdir()): string {
  const digest = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 8);
  return path.join(tmpDir, `rp-${digest}`);
}

/** An instance's directory name: the random tail of its presence id (8 hex). */
export function instanceDirName(instanceId: string): string {
  const tail = instanceId.slice(instanceId.lastIndexOf(':') + 1);
  return /^[0-9a-f]{8}$/.test(tail)
    ? tail
    : createHash('sha256').update(instanceId).digest('hex').slice(0, 8);
}

/**
 * Creates this instance's workspace directory (0700) under the data directory's root, with an
 * `owner` file naming the instance, so a later start-up can tell whose presence has ended.
 */
export async function claimInstanceDir(
  dataDir: string,
  instanceId: string,
  tmpDir?: string,
): Promise<string> {
  const root = workspacesRoot(dataDir, tmpDir);
  await mkdir(root, { recursive: true, mode: 0o700 });
  await chmod(root, 0o700);
  const dir = path.join(root, instanceDirName(instanceId));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(path.join(dir, OWNER_FILE), instanceId, { mode: 0o600 });
  return dir;
}

export interface SweepDeps {
  dataDir: string;
  /** This instance: its directory is never swept. */
  self: string;
  tmpDir?: string;
  /** Of these instance ids, the ones whose presence has ended (InstancePresence.deadAmong). */
  deadAmong(owners: string[]): Promise<string[]>;
  /** Process groups recorded in run rows of these owners (RunsStore.processesOf). */
  processesOf(owners: string[]): Promise<{ id: string; owner: string; pgid: number }[]>;
  logger: Logger;
}

export interface SweepResult {
  removed: string[];
  stoppedGroups: number[];
}

async function commandLine(pid: number): Promise<string | null> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replaceAll('\0', ' ');
  } catch {
    return null; // no such process
  }
}

/**
 * At start-up: removes the workspaces (vault password copies included) of instances of this
 * data directory whose presence has ended, after stopping the process groups their run rows
 * recorded — only a group whose leader's command line still names that dead instance's
 * directory (a recorded pid may since belong to anything else) — and the SSH masters that
 * name one of its runs. Live instances' directories, and anything outside this data
 * directory's root, are never touched.
 */
export async function sweepDeadInstances(deps: SweepDeps): Promise<SweepResult> {
  const root = workspacesRoot(deps.dataDir, deps.tmpDir);
  const own = instanceDirName(deps.self);
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch {
    return { removed: [], stoppedGroups: [] };
  }
  const owners = new Map<string, string>();
  for (const entry of entries) {
    if (entry === own) continue;
    const owner = await readFile(path.join(root, entry, OWNER_FILE), 'utf8').catch(() => null);
    if (owner === null || instanceDirName(owner) !== entry) {
      deps.logger.warn(
        { event: 'workspaces.unowned', dir: path.join(root, entry) },
        'a workspace directory names no instance; left alone',
      );
      continue;
    }
    owners.set(owner, path.join(root, entry));
  }
  const dead = await deps.deadAmong([...owners.keys()]);
  const stoppedGroups: number[] = [];
  for (const row of await deps.processesOf(dead)) {
    const dir = owners.get(row.owner);
    const cmdline = dir ? await commandLine(row.pgid) : null;
    if (!dir || cmdline === null || !cmdline.includes(dir + path.sep)) continue;
    signalGroup(row.pgid, 'SIGKILL');
    stoppedGroups.push(row.pgid);
    deps.logger.warn(
      { event: 'run.group_stopped', run_id: row.id, owner: row.owner, pgid: row.pgid },
      'stopped the process group of a run whose instance has ended',
    );
  }
  const removed: string[] = [];
  for (const owner of dead) {
    const dir = owners.get(owner)!;
    const runs = await readdir(dir).catch(() => [] as string[]);
    for (const run of runs.filter((r) => r !== OWNER_FILE)) {
      const ws = path.join(dir, run);
      await closeSshMasters(path.join(ws, 'cp'), ws);
    }
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    removed.push(dir);
    deps.logger.info(
      { event: 'workspaces.swept', owner, dir },
      'removed the workspaces of an instance that has ended',
    );
  }
  return { removed, stoppedGroups };
}

/**
 * At a clean stop: removes this instance's directory, and the data directory's root once no
 * other instance's directory is left in it (a later start-up recreates it).
 */
export async function releaseInstanceDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
  await rmdir(path.dirname(dir)).catch(() => undefined); // ENOTEMPTY: another's is there
}
