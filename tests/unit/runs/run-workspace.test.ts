import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createWorkspace,
  removeWorkspace,
  type RunWorkspace,
  type WorkspaceSources,
} from '../../../src/runs/run-workspace.ts';

const mode = async (p: string) => (await stat(p)).mode & 0o777;

describe('run workspace', () => {
  let base: string;
  let sources: WorkspaceSources;
  const made: RunWorkspace[] = [];

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'workspace-test-'));
    const catalog = path.join(base, 'catalog');
    const inventory = path.join(base, 'inventory');
    await mkdir(path.join(catalog, 'net'), { recursive: true });
    await mkdir(path.join(inventory, 'group_vars'), { recursive: true });
    await mkdir(path.join(base, 'library'));
    await writeFile(path.join(catalog, 'ping.yml'), '- hosts: all\n');
    await writeFile(path.join(catalog, 'net', 'check.yml'), '- hosts: all\n');
    await symlink('ping.yml', path.join(catalog, 'alias.yml'));
    await symlink('/etc/passwd', path.join(catalog, 'escape.yml'));
    await symlink('/', path.join(catalog, 'root'));
    await symlink('/nonexistent', path.join(catalog, 'dangling.yml'));
    await writeFile(path.join(base, 'library', 'mod.py'), '# module\n');
    await writeFile(path.join(inventory, 'hosts.yml'), 'all:\n  hosts:\n    h1: {}\n');
    await writeFile(path.join(inventory, 'group_vars', 'all.yml'), 'x: 1\n');
    sources = {
      playbookRoot: catalog,
      libraryDir: path.join(base, 'library'),
      inventoryPath: path.join(inventory, 'hosts.yml'),
      extravars: { marker: 'm', list: [1, 2] },
      vaultPassword: 'correct horse',
    };
  });

  afterEach(async () => {
    for (const ws of made.splice(0)) await removeWorkspace(ws);
  });

  afterAll(async () => {
    await rm(base, { recursive: true, force: true });
  });

  const create = async (overrides: Partial<WorkspaceSources> = {}) => {
    const ws = await createWorkspace({ ...sources, ...overrides });
    made.push(ws);
    return ws;
  };

  it('when created, then the directory is private (0700) under the system temp dir', async () => {
    const ws = await create();
    expect(path.dirname(ws.dir)).toBe(os.tmpdir());
    expect(await mode(ws.dir)).toBe(0o700);
    expect(await mode(ws.controlPathDir)).toBe(0o700);
    expect(await mode(ws.localTempDir)).toBe(0o700);
  });

  it('when created, then extravars are a 0600 JSON file with what was asked, each value marked unsafe for Ansible', async () => {
    const ws = await create();
    expect(await mode(ws.extravarsPath)).toBe(0o600);
    expect(JSON.parse(await readFile(ws.extravarsPath, 'utf8'))).toEqual({
      marker: { __ansible_unsafe: 'm' },
      list: { __ansible_unsafe: [1, 2] },
    });
  });

  it('when a vault password is configured, then it is a 0600 file holding it', async () => {
    const ws = await create();
    expect(ws.vaultPasswordPath).not.toBeNull();
    expect(await mode(ws.vaultPasswordPath!)).toBe(0o600);
    expect(await readFile(ws.vaultPasswordPath!, 'utf8')).toBe('correct horse\n');
  });

  it('when no vault password is configured, then there is no password file', async () => {
    const ws = await create({ vaultPassword: undefined });
    expect(ws.vaultPasswordPath).toBeNull();
    expect(await readdir(ws.dir)).not.toContain('vault-password');
  });

  it('when created, then the inventory comes with its group_vars, and the library is copied', async () => {
    const ws = await create();
    expect(ws.inventoryPath).toBe(path.join(ws.dir, 'inventory', 'hosts.yml'));
    expect(await readFile(ws.inventoryPath, 'utf8')).toContain('h1');
    expect(existsSync(path.join(ws.dir, 'inventory', 'group_vars', 'all.yml'))).toBe(true);
    expect(await readdir(ws.libraryDir)).toEqual(['mod.py']);
  });

  it('when the playbook root has symlinks, then those inside are copied as files and those leading out (or nowhere) are left out', async () => {
    const ws = await create();
    expect((await readdir(ws.projectDir)).sort()).toEqual(['alias.yml', 'net', 'ping.yml']);
    expect(await readFile(path.join(ws.projectDir, 'alias.yml'), 'utf8')).toBe('- hosts: all\n');
    expect(await readdir(path.join(ws.projectDir, 'net'))).toEqual(['check.yml']);
  });

  it('when removed, then nothing of it is left', async () => {
    const ws = await createWorkspace(sources);
    await writeFile(path.join(ws.localTempDir, 'leftover'), 'x');
    await removeWorkspace(ws);
    expect(existsSync(ws.dir)).toBe(false);
  });

  it('when creating fails midway, then the half-built directory is removed', async () => {
    const before = new Set(
      (await readdir(os.tmpdir())).filter((n) => n.startsWith('routeplane-run-')),
    );
    await expect(
      createWorkspace({ ...sources, inventoryPath: path.join(base, 'missing.yml') }),
    ).rejects.toThrow(/ENOENT/);
    const after = (await readdir(os.tmpdir())).filter(
      (n) => n.startsWith('routeplane-run-') && !before.has(n),
    );
    expect(after).toEqual([]);
  });
});
