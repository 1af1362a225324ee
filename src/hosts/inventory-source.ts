import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { Config } from '../config.ts';
import { ansibleBaseEnvironment } from '../runs/ansible-environment.ts';
import {
  addressSet,
  inventoryFromAnsibleList,
  InventoryError,
  type ControllerIdentity,
  type Inventory,
} from './inventory.ts';

// Every request that names a host reads the inventory; walking the source per request is
// measurable, and an edit showing up a quarter second later is not.
const RECHECK_MS = 250;
const LIST_TIMEOUT_MS = 120_000;
/** Directories Ansible reads beside an inventory file (and inside an inventory directory). */
export const INVENTORY_VAR_DIRS = ['host_vars', 'group_vars'];

type SourceConfig = Pick<
  Config,
  'inventoryPath' | 'ansibleInventory' | 'vaultPassword' | 'vaultPasswordFile'
>;

/**
 * The files that make up the inventory source: a directory and everything under it, or a file
 * and the host_vars/ and group_vars/ beside it. This is also what each run copies.
 */
export async function inventoryFiles(source: string): Promise<string[]> {
  const st = await stat(source).catch(() => null);
  if (!st) return [];
  const walk = async (dir: string): Promise<string[]> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    const out: string[] = [];
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) out.push(...(await walk(full)));
      else out.push(full);
    }
    return out;
  };
  if (st.isDirectory()) return (await walk(source)).sort();
  const beside = await Promise.all(
    INVENTORY_VAR_DIRS.map((d) => walk(path.join(path.dirname(source), d))),
  );
  return [source, ...beside.flat()].sort();
}

/** A digest of names, sizes and modification times: any edit, addition or removal changes it. */
async function digestOf(source: string): Promise<string> {
  const hash = createHash('sha256');
  for (const f of await inventoryFiles(source)) {
    const st = await stat(f).catch(() => null);
    hash.update(`${f}\0${st?.size ?? -1}\0${st?.mtimeMs ?? -1}\n`);
  }
  return hash.digest('hex');
}

/** The controller's own addresses and names, read once per inventory load. */
export async function controllerIdentity(): Promise<ControllerIdentity> {
  const addresses = addressSet(
    Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)),
  );
  const names = new Set([os.hostname().toLowerCase()]);
  // /etc/hosts names of this machine (no DNS: nothing leaves the machine to answer this).
  const hostsFile = await readFile('/etc/hosts', 'utf8').catch(() => '');
  for (const line of hostsFile.split('\n')) {
    const [addr, ...aliases] = line.replace(/#.*/, '').trim().split(/\s+/);
    if (!addr || aliases.length === 0) continue;
    const [normal] = addressSet([addr]);
    if (!normal) continue;
    const loopback = normal.startsWith('127.') || normal === '::1';
    if (loopback || addresses.has(normal)) for (const a of aliases) names.add(a.toLowerCase());
  }
  return { addresses, names };
}

/**
 * The inventory as Ansible reads it (`ansible-inventory --list`), re-read when any file of the
 * source changes or on reload() (SIGHUP). Concurrent readers share one ansible-inventory.
 */
export class InventorySource {
  private cached: { digest: string; inventory: Inventory } | null = null;
  private checkedAt = 0;
  private loading: Promise<Inventory> | null = null;
  private readonly loadedListeners: ((inventory: Inventory) => void)[] = [];

  constructor(private readonly config: SourceConfig) {}

  /** Told each time a changed inventory has been read. */
  onLoaded(listener: (inventory: Inventory) => void): void {
    this.loadedListeners.push(listener);
  }

  get path(): string {
    return this.config.inventoryPath;
  }

  /** Forget what was read: the next current() asks Ansible again. */
  reload(): void {
    this.cached = null;
    this.checkedAt = 0;
  }

  async current(): Promise<Inventory> {
    if (this.cached && Date.now() - this.checkedAt < RECHECK_MS) return this.cached.inventory;
    return (this.loading ??= this.load().finally(() => (this.loading = null)));
  }

  private async load(): Promise<Inventory> {
    const digest = await digestOf(this.path);
    this.checkedAt = Date.now();
    if (this.cached?.digest === digest) return this.cached.inventory;
    const inventory = await this.list();
    // Only cached if nothing changed while Ansible read it; otherwise the next call re-reads.
    if ((await digestOf(this.path)) === digest) this.cached = { digest, inventory };
    for (const listener of this.loadedListeners) listener(inventory);
    return inventory;
  }

  private async list(): Promise<Inventory> {
    const st = await stat(this.path).catch(() => null);
    if (!st) throw new InventoryError(`cannot read inventory ${this.path}: it does not exist`);
    let vaultDir: string | null = null;
    try {
      const args = ['-i', this.path, '--list'];
      if (this.config.vaultPasswordFile) {
        args.push('--vault-password-file', this.config.vaultPasswordFile);
      } else if (this.config.vaultPassword !== undefined) {
        vaultDir = await mkdtemp(path.join(os.tmpdir(), 'routeplane-inv-'));
        const file = path.join(vaultDir, 'vault-password');
        await writeFile(file, this.config.vaultPassword + '\n', { mode: 0o600 });
        args.push('--vault-password-file', file);
      }
      const result = await execa(this.config.ansibleInventory, args, {
        env: inventoryEnvironment(),
        extendEnv: false,
        reject: false,
        stdin: 'ignore',
        timeout: LIST_TIMEOUT_MS,
      });
      if (result.exitCode !== 0) {
        const why =
          String(result.stderr ?? '')
            .split('\n')
            .filter((l) => /ERROR!|Failed to parse|Unable to parse/.test(l))
            .join(' ')
            .trim() ||
          (result.originalMessage ?? result.message);
        throw new InventoryError(`${this.path} is not a valid inventory: ${why}`);
      }
      let listed: unknown;
      try {
        listed = JSON.parse(String(result.stdout));
      } catch {
        throw new InventoryError(`ansible-inventory printed no JSON for ${this.path}`);
      }
      return inventoryFromAnsibleList(listed, await controllerIdentity());
    } finally {
      if (vaultDir) await rm(vaultDir, { recursive: true, force: true });
    }
  }
}

function inventoryEnvironment(): Record<string, string> {
  return {
    ...ansibleBaseEnvironment(),
    ANSIBLE_LOCALHOST_WARNING: 'False',
    ANSIBLE_INVENTORY_UNPARSED_WARNING: 'False',
  };
}
