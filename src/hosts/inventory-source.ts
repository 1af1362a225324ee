import { stat } from 'node:fs/promises';
import { readInventory, type Inventory } from './inventory.ts';

/** The inventory file, re-read only when it changes on disk. */
export class InventorySource {
  private cached: { mtimeMs: number; size: number; inventory: Inventory } | null = null;

  constructor(readonly path: string) {}

  async current(): Promise<Inventory> {
    const st = await stat(this.path).catch(() => null);
    if (st && this.cached && this.cached.mtimeMs === st.mtimeMs && this.cached.size === st.size) {
      return this.cached.inventory;
    }
    const inventory = await readInventory(this.path);
    if (st) this.cached = { mtimeMs: st.mtimeMs, size: st.size, inventory };
    return inventory;
  }
}
