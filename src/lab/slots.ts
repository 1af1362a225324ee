import { readdir, readlink, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { SLOT_COUNT } from './addressing.ts';
import { errnoCode } from './errors.ts';

const SLOT_ENTRY = /^slot-(\d+)$/;
const slotPath = (root: string, slot: number) => path.join(root, `slot-${slot}`);

// A claim is a symlink <root>/slot-<k> -> <lab id>. symlink(2) creates atomically or fails with
// EEXIST, so test workers creating labs at the same moment can never both win a slot.
export async function claimSlot(
  root: string,
  id: string,
  usable: (slot: number) => boolean,
): Promise<number> {
  for (let slot = 0; slot < SLOT_COUNT; slot++) {
    if (!usable(slot)) continue;
    try {
      await symlink(id, slotPath(root, slot));
      return slot;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
  }
  throw new Error(
    `no free lab slot under ${root} (${SLOT_COUNT} max); \`lab down --stale\` removes labs of dead processes`,
  );
}

export async function listSlotClaims(root: string): Promise<Map<number, string>> {
  const claims = new Map<number, string>();
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return claims;
    throw err;
  }
  for (const entry of entries) {
    const m = SLOT_ENTRY.exec(entry);
    if (!m) continue;
    try {
      claims.set(Number(m[1]), await readlink(path.join(root, entry)));
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
  }
  return claims;
}

export async function releaseSlot(root: string, slot: number): Promise<void> {
  try {
    await unlink(slotPath(root, slot));
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
}

export async function releaseSlots(root: string, id: string): Promise<void> {
  for (const [slot, owner] of await listSlotClaims(root)) {
    if (owner === id) await releaseSlot(root, slot);
  }
}
