import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, realpath, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { markUnsafe } from './playbook-vars.ts';

export interface WorkspaceSources {
  playbookRoot: string;
  libraryDir: string;
  inventoryPath: string;
  extravars: Record<string, unknown>;
  /** Written one file per host to `project/desired/<host>.json`, every value marked unsafe. */
  hostVars?: Record<string, Record<string, unknown>>;
  vaultPassword: string | undefined;
  /**
   * The directory of this routeplane instance's workspaces (per data directory and instance,
   * see instance-workspaces.ts); the system temp dir when not given (tools, tests).
   */
  parentDir?: string;
}

/** The per-run temp dir (0700) and the files ansible-playbook is pointed at. */
export interface RunWorkspace {
  dir: string;
  projectDir: string;
  libraryDir: string;
  inventoryPath: string;
  extravarsPath: string;
  vaultPasswordPath: string | null;
  controlPathDir: string;
  localTempDir: string;
}

/**
 * A `cp` filter that follows symlinks staying inside `root` and skips those leading out of it
 * (or nowhere): a catalog symlink to /etc/passwd, or to /, must not be copied into every run.
 */
async function insideOf(root: string): Promise<(src: string) => Promise<boolean>> {
  const base = await realpath(root);
  return async (src) => {
    const real = await realpath(src).catch(() => null);
    return real !== null && (real === base || real.startsWith(base + path.sep));
  };
}

/**
 * Builds a run's private copy of everything it reads, so a run never sees a playbook edited
 * under it and nothing it needs (extravars, the vault password) is ever on argv.
 */
export async function createWorkspace(src: WorkspaceSources): Promise<RunWorkspace> {
  const dir = await mkdtemp(
    src.parentDir ? path.join(src.parentDir, 'r') : path.join(os.tmpdir(), 'routeplane-run-'),
  );
  try {
    await chmod(dir, 0o700);
    const ws: RunWorkspace = {
      dir,
      projectDir: path.join(dir, 'project'),
      libraryDir: path.join(dir, 'library'),
      inventoryPath: path.join(dir, 'inventory', path.basename(src.inventoryPath)),
      extravarsPath: path.join(dir, 'extravars.json'),
      vaultPasswordPath: src.vaultPassword === undefined ? null : path.join(dir, 'vault-password'),
      // Short on purpose: a unix socket path must fit in 108 bytes.
      controlPathDir: path.join(dir, 'cp'),
      localTempDir: path.join(dir, 'tmp'),
    };
    await cp(src.playbookRoot, ws.projectDir, {
      recursive: true,
      dereference: true,
      filter: await insideOf(src.playbookRoot),
    });
    if (existsSync(src.libraryDir)) {
      await cp(src.libraryDir, ws.libraryDir, {
        recursive: true,
        dereference: true,
        filter: await insideOf(src.libraryDir),
      });
    }
    await mkdir(path.dirname(ws.inventoryPath), { mode: 0o700 });
    // The whole source Ansible read for the fleet: a directory with everything in it, or a file
    // with the group_vars/ and host_vars/ beside it.
    await cp(src.inventoryPath, ws.inventoryPath, { recursive: true, dereference: true });
    const fileSource = !(await stat(src.inventoryPath)).isDirectory();
    for (const sub of fileSource ? ['group_vars', 'host_vars'] : []) {
      const from = path.join(path.dirname(src.inventoryPath), sub);
      if (existsSync(from)) {
        await cp(from, path.join(path.dirname(ws.inventoryPath), sub), {
          recursive: true,
          dereference: true,
        });
      }
    }
    // Every value marked unsafe: extravars come from requests, and Ansible templates what it loads.
    await writeFile(ws.extravarsPath, JSON.stringify(markUnsafe(src.extravars)), { mode: 0o600 });
    if (src.hostVars) await writeHostFiles(path.join(ws.projectDir, 'desired'), src.hostVars);
    if (ws.vaultPasswordPath) {
      await writeFile(ws.vaultPasswordPath, src.vaultPassword + '\n', { mode: 0o600 });
    }
    await mkdir(ws.controlPathDir, { mode: 0o700 });
    await mkdir(ws.localTempDir, { mode: 0o700 });
    return ws;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** An inventory name as a file name: one path segment, never `..` or hidden. */
export function hostFileName(host: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.:@-]*$/.test(host) || host.includes('..')) {
    throw new Error(`host name '${host}' cannot name a file of desired state`);
  }
  return `${host}.json`;
}

async function writeHostFiles(
  dir: string,
  hostVars: Record<string, Record<string, unknown>>,
): Promise<void> {
  await mkdir(dir, { mode: 0o700, recursive: true });
  for (const [host, vars] of Object.entries(hostVars)) {
    await writeFile(path.join(dir, hostFileName(host)), JSON.stringify(markUnsafe(vars)), {
      mode: 0o600,
    });
  }
}

export async function removeWorkspace(ws: RunWorkspace): Promise<void> {
  await rm(ws.dir, { recursive: true, force: true, maxRetries: 3 });
}
