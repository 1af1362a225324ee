import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { load } from 'js-yaml';
import { INVENTORY_VAR_DIRS } from '../hosts/inventory-source.ts';
import { ValidationError } from '../http/errors.ts';
import { parseSidecar, SidecarError, type VarSpec } from './playbook-vars.ts';

const NAME = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;
const SIDECAR = /\.vars\.ya?ml$/;

export interface CatalogEntry {
  name: string;
  root: string;
  file: string;
  /** What the playbook accepts as extravars (its sidecar); empty without one. */
  vars: VarSpec[];
}

export interface CatalogListing {
  name: string;
  vars: VarSpec[];
  /** Why the sidecar cannot be used; such a playbook accepts no extravars until it is fixed. */
  error: string | null;
}

/**
 * The playbooks an admin may run by name. A name resolves to `<name>.yml` (or `.yaml`) inside
 * the catalog directory, and its real path, symlinks followed, must stay inside it. A sidecar
 * `<name>.vars.yml` declares the extra variables the playbook accepts.
 */
export class PlaybookCatalog {
  constructor(private readonly dir: string) {}

  private async inside(root: string, candidate: string): Promise<string | null> {
    const real = await realpath(candidate).catch(() => null);
    if (real === null) return null;
    if (!real.startsWith(root + path.sep)) return 'outside';
    return (await stat(real)).isFile() ? real : null;
  }

  private async sidecar(root: string, name: string): Promise<VarSpec[]> {
    for (const ext of ['.vars.yml', '.vars.yaml']) {
      const file = path.join(root, name + ext);
      const real = await this.inside(root, file);
      if (real === null) continue;
      if (real === 'outside') throw new SidecarError(`${name + ext} resolves outside the catalog`);
      let doc: unknown;
      try {
        doc = load(await readFile(real, 'utf8'));
      } catch (err) {
        throw new SidecarError(`${name + ext}: ${(err as Error).message.split('\n')[0]}`);
      }
      return parseSidecar(doc, name + ext);
    }
    return [];
  }

  async resolve(name: string): Promise<CatalogEntry> {
    if (!NAME.test(name)) {
      throw ValidationError.field(
        '/body/playbook',
        'must be a catalog name like "ping" or "net/check"',
      );
    }
    const root = await realpath(this.dir);
    for (const ext of ['.yml', '.yaml']) {
      const real = await this.inside(root, path.join(root, name + ext));
      if (real === null) continue;
      if (real === 'outside') {
        throw ValidationError.field('/body/playbook', 'resolves outside the playbook catalog');
      }
      let vars: VarSpec[];
      try {
        vars = await this.sidecar(root, name);
      } catch (err) {
        if (!(err instanceof SidecarError)) throw err;
        throw ValidationError.field(
          '/body/playbook',
          `the playbook's variable declarations are invalid: ${err.message}`,
        );
      }
      return { name, root, file: path.relative(root, real), vars };
    }
    throw ValidationError.field('/body/playbook', `no playbook named '${name}' in the catalog`);
  }

  /** Every runnable playbook with the variables it accepts, sorted by name. */
  async list(): Promise<CatalogListing[]> {
    const root = await realpath(this.dir);
    const names: string[] = [];
    const walk = async (rel: string): Promise<void> => {
      const entries = await readdir(path.join(root, rel), { withFileTypes: true });
      for (const e of entries) {
        const relPath = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) {
          if (!INVENTORY_VAR_DIRS.includes(e.name) && NAME.test(relPath)) await walk(relPath);
        } else if (/\.ya?ml$/.test(e.name) && !SIDECAR.test(e.name)) {
          const name = relPath.replace(/\.ya?ml$/, '');
          const real = await this.inside(root, path.join(root, relPath));
          if (NAME.test(name) && real !== null && real !== 'outside') names.push(name);
        }
      }
    };
    await walk('');
    const unique = [...new Set(names)].sort();
    return Promise.all(
      unique.map(async (name) => {
        try {
          return { name, vars: await this.sidecar(root, name), error: null };
        } catch (err) {
          if (!(err instanceof SidecarError)) throw err;
          return { name, vars: [], error: err.message };
        }
      }),
    );
  }
}
