import { accessSync, constants, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { TokenRegistry } from './auth/token-registry.ts';
import { INVENTORY_VAR_DIRS } from './hosts/inventory-source.ts';

/** routeplane's own playbooks: they must exist, and must never be runnable by catalog name. */
export const OWN_PLAYBOOKS = ['apply.yml', 'gather_state.yml'] as const;

export interface ConfiguredPaths {
  inventoryPath: string;
  playbooksDir: string;
  catalogDir: string;
  apiTokensFile: string | undefined;
  vaultPasswordFile: string | undefined;
}

function reason(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

function readable(
  variable: string,
  file: string,
  kind: 'file' | 'directory' | 'file or directory',
): void {
  let isKind: boolean;
  try {
    const st = statSync(file);
    isKind = (kind !== 'directory' && st.isFile()) || (kind !== 'file' && st.isDirectory());
    accessSync(file, constants.R_OK);
  } catch (err) {
    throw new Error(`${variable}: cannot read ${file} (${reason(err)})`);
  }
  if (!isKind) throw new Error(`${variable}: ${file} is not a ${kind}`);
}

/** The first host_vars/ or group_vars/ directory under `dir`, at any depth, or null. */
function varDirsUnder(dir: string): string | null {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    const full = path.join(dir, e.name);
    if (INVENTORY_VAR_DIRS.includes(e.name)) return full;
    const deeper = varDirsUnder(full);
    if (deeper) return deeper;
  }
  return null;
}

function isWithin(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Every file a setting names is checked once at start-up, so a typo stops the process naming
 * the variable instead of turning every later request (or the first run) into a failure.
 * Throws a plain Error whose message starts with the variable; loadConfig wraps it.
 */
export function checkConfiguredPaths(p: ConfiguredPaths): void {
  // Whether Ansible can parse it is checked at start-up by the server (ansible-inventory).
  readable('INVENTORY', p.inventoryPath, 'file or directory');
  readable('PLAYBOOKS_DIR', p.playbooksDir, 'directory');
  for (const own of OWN_PLAYBOOKS) {
    readable('PLAYBOOKS_DIR', path.join(p.playbooksDir, own), 'file');
  }
  readable('CATALOG_DIR', p.catalogDir, 'directory');
  // A catalog at or above PLAYBOOKS_DIR would let an admin start apply or gather_state
  // by name with extravars of their choosing.
  if (isWithin(realpathSync(p.playbooksDir), realpathSync(p.catalogDir))) {
    throw new Error(
      `CATALOG_DIR: ${p.catalogDir} holds routeplane's own playbooks (PLAYBOOKS_DIR); use a subdirectory such as ${path.join(p.playbooksDir, 'catalog')}`,
    );
  }
  // Ansible reads host_vars/ and group_vars/ beside a playbook too: there they would change a
  // host's connection settings behind the inventory routeplane reads and guards.
  for (const [variable, dir] of [
    ['CATALOG_DIR', p.catalogDir],
    ['PLAYBOOKS_DIR', p.playbooksDir],
  ] as const) {
    const found = varDirsUnder(dir);
    if (found) {
      throw new Error(
        `${variable}: ${found} would set host variables for runs; keep host_vars/ and group_vars/ beside the inventory (INVENTORY)`,
      );
    }
  }
  if (p.apiTokensFile) {
    readable('API_TOKENS_FILE', p.apiTokensFile, 'file');
    TokenRegistry.fromDigestFile(p.apiTokensFile);
  }
  if (p.vaultPasswordFile) {
    readable('VAULT_PASSWORD_FILE', p.vaultPasswordFile, 'file');
    if (readFileSync(p.vaultPasswordFile, 'utf8').trim() === '') {
      throw new Error(`VAULT_PASSWORD_FILE: ${p.vaultPasswordFile} is empty`);
    }
  }
}
