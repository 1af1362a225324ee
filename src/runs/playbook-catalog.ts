import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../http/errors.ts';

const NAME = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;

export interface CatalogEntry {
  name: string;
  root: string;
  file: string;
}

/**
 * The playbooks an admin may run by name. A name resolves to `<name>.yml` (or `.yaml`) inside
 * the catalog directory, and its real path, symlinks followed, must stay inside it.
 */
export class PlaybookCatalog {
  constructor(private readonly dir: string) {}

  async resolve(name: string): Promise<CatalogEntry> {
    if (!NAME.test(name)) {
      throw ValidationError.field(
        '/body/playbook',
        'must be a catalog name like "ping" or "net/check"',
      );
    }
    const root = await realpath(this.dir);
    for (const ext of ['.yml', '.yaml']) {
      const candidate = path.join(root, name + ext);
      let real: string;
      try {
        real = await realpath(candidate);
      } catch {
        continue;
      }
      if (!real.startsWith(root + path.sep)) {
        throw ValidationError.field('/body/playbook', 'resolves outside the playbook catalog');
      }
      if (!(await stat(real)).isFile()) continue;
      return { name, root, file: path.relative(root, real) };
    }
    throw ValidationError.field('/body/playbook', `no playbook named '${name}' in the catalog`);
  }
}
