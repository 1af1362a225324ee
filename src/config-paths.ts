import { accessSync, constants, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { TokenRegistry } from './auth/token-registry.ts';
import { parseInventory } from './hosts/inventory.ts';

/** routeplane's own playbooks: they must exist, and must never be runnable by catalog name. */
export const OWN_PLAYBOOKS = ['apply_routes.yml', 'gather_state.yml'] as const;

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

function readable(variable: string, file: string, kind: 'file' | 'directory'): void {
  let isKind: boolean;
  try {
    const st = statSync(file);
    isKind = kind === 'file' ? st.isFile() : st.isDirectory();
    accessSync(file, constants.R_OK);
  } catch (err) {
    throw new Error(`${variable}: cannot read ${file} (${reason(err)})`);
  }
  if (!isKind) throw new Error(`${variable}: ${file} is not a ${kind}`);
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
  readable('INVENTORY', p.inventoryPath, 'file');
  try {
    parseInventory(readFileSync(p.inventoryPath, 'utf8'));
  } catch (err) {
    throw new Error(`INVENTORY: ${p.inventoryPath} is not a valid inventory: ${reason(err)}`);
  }
  readable('PLAYBOOKS_DIR', p.playbooksDir, 'directory');
  for (const own of OWN_PLAYBOOKS) {
    readable('PLAYBOOKS_DIR', path.join(p.playbooksDir, own), 'file');
  }
  readable('CATALOG_DIR', p.catalogDir, 'directory');
  // A catalog at or above PLAYBOOKS_DIR would let an admin start apply_routes or gather_state
  // by name with extravars of their choosing.
  if (isWithin(realpathSync(p.playbooksDir), realpathSync(p.catalogDir))) {
    throw new Error(
      `CATALOG_DIR: ${p.catalogDir} holds routeplane's own playbooks (PLAYBOOKS_DIR); use a subdirectory such as ${path.join(p.playbooksDir, 'catalog')}`,
    );
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
