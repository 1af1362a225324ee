import { rm } from 'node:fs/promises';
import path from 'node:path';
import { labDown } from './lab.ts';
import { resolveRoot } from './naming.ts';
import { destroyNetwork, labIdsWithNetwork } from './netns.ts';
import { isAlive } from './procs.ts';
import { listSlotClaims, releaseSlot } from './slots.ts';
import { listLabIds, listPendingDirs, readOwnerPid } from './state.ts';

/**
 * Remove labs whose owner process is gone, and namespaces/bridges named like a lab that has no
 * directory under root. Note: labs kept under a different root look orphaned from here, since
 * kernel names are machine-wide. Returns the ids removed.
 */
export async function labDownStale(opts: { root?: string } = {}): Promise<string[]> {
  const root = resolveRoot(opts.root);
  const removed = new Set<string>();

  // Network objects are listed before directories: a lab creates its directory before any
  // namespace, so anything seen here whose directory is missing afterwards is truly orphaned
  // rather than a lab being built right now by another process.
  const withNetwork = await labIdsWithNetwork();

  for (const id of await listLabIds(root)) {
    const owner = await readOwnerPid(path.join(root, id));
    if (owner !== undefined && (await isAlive(owner))) continue;
    await labDown({ id, root });
    removed.add(id);
  }

  const dirs = new Set(await listLabIds(root));
  for (const id of withNetwork) {
    if (dirs.has(id) || removed.has(id)) continue;
    await destroyNetwork(id);
    removed.add(id);
  }

  // Same ordering argument: a lab claims its slot only after creating its directory.
  const claims = await listSlotClaims(root);
  const dirsNow = new Set(await listLabIds(root));
  for (const [slot, id] of claims) {
    if (!dirsNow.has(id)) await releaseSlot(root, slot);
  }
  for (const pending of await listPendingDirs(root)) {
    // no owner.pid yet means a claim in progress right now
    const owner = await readOwnerPid(pending);
    if (owner !== undefined && !(await isAlive(owner))) {
      await rm(pending, { recursive: true, force: true });
    }
  }
  return [...removed].sort();
}
