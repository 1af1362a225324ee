import { stat } from 'node:fs/promises';
import { readInventory, type Inventory } from './inventory.ts';

// Every request that names a host reads the inventory; a stat per request is measurable, and
// an edit to the file showing up a quarter second later is not.
const RECHECK_MS = 250;

/** The inventory file, re-read only when it changes on disk. */
export class InventorySource {
  private cached: { mtimeMs: number; size: number; inventory: Inventory } | null = null;
  private checkedAt = 0;

  constructor(readonly path: string) {}

  async current(): Promise<Inventory> {
    if (this.cached && Date.now() - this.checkedAt < RECHECK_MS) return this.cached.inventory;
    this.checkedAt = Date.now();
    const st = await stat(this.path).catch(() => null);
    if (st && this.cached && this.cached.mtimeMs === st.mtimeMs && this.cached.size === st.size) {
      return this.cached.inventory;
    }
    const inventory = await readInventory(this.path);
    if (st) this.cached = { mtimeMs: st.mtimeMs, size: st.size, inventory };
    return inventory;
  }
}
