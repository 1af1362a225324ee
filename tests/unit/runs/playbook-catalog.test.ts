import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/http/errors.ts';
import { PlaybookCatalog } from '../../../src/runs/playbook-catalog.ts';

const PLAY = '- hosts: all\n  tasks: []\n';

describe('PlaybookCatalog', () => {
  let base: string;
  let root: string;
  let catalog: PlaybookCatalog;

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'catalog-test-'));
    root = path.join(base, 'cat');
    // a sibling whose name starts with the catalog's: a prefix check alone would let it in
    const sibling = path.join(base, 'cat-evil');
    await mkdir(path.join(root, 'net'), { recursive: true });
    await mkdir(path.join(root, 'dir.yml'));
    await mkdir(sibling);
    await writeFile(path.join(root, 'ping.yml'), PLAY);
    await writeFile(path.join(root, 'net', 'check.yaml'), PLAY);
    await writeFile(path.join(sibling, 'p.yml'), PLAY);
    await symlink('/etc/passwd', path.join(root, 'escape.yml'));
    await symlink('../cat-evil/p.yml', path.join(root, 'sibling.yml'));
    await symlink(sibling, path.join(root, 'linked-dir'));
    await symlink('ping.yml', path.join(root, 'alias.yml'));
    await symlink('/nonexistent/x.yml', path.join(root, 'dangling.yml'));
    catalog = new PlaybookCatalog(root);
  });

  afterAll(async () => {
    await rm(base, { recursive: true, force: true });
  });

  async function rejection(name: string): Promise<ValidationError> {
    const err = await catalog.resolve(name).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err, `resolving ${JSON.stringify(name)} should fail`).toBeInstanceOf(ValidationError);
    const v = err as ValidationError;
    expect(v.status).toBe(400);
    expect(v.fields.map((f) => f.field)).toEqual(['/body/playbook']);
    return v;
  }

  it('when a name is a playbook of the catalog, then it resolves to that file', async () => {
    expect(await catalog.resolve('ping')).toEqual({
      name: 'ping',
      root,
      file: 'ping.yml',
      vars: [],
    });
  });

  it('when a name has a folder, then it resolves inside it, .yaml as well as .yml', async () => {
    expect(await catalog.resolve('net/check')).toEqual({
      name: 'net/check',
      root,
      file: path.join('net', 'check.yaml'),
      vars: [],
    });
  });

  it('when a name is a symlink inside the catalog, then it resolves to the real file', async () => {
    expect((await catalog.resolve('alias')).file).toBe('ping.yml');
  });

  it.each([
    '../x',
    '/etc/passwd',
    'a//b',
    'a.b',
    'ping.yml',
    '',
    'net/',
    '/ping',
    'a b',
    'ping\n',
    '..',
    'net/../ping',
    'h\u00e9',
  ])(
    'when the name is %j, then it is refused by its shape before the disk is read',
    async (name) => {
      const err = await rejection(name);
      expect(err.message).toMatch(/must be a catalog name/);
    },
  );

  it('when a name is a symlink to a file outside the catalog, then it is refused', async () => {
    expect((await rejection('escape')).message).toMatch(/resolves outside the playbook catalog/);
  });

  it('when a name reaches outside through a symlinked folder, then it is refused', async () => {
    expect((await rejection('linked-dir/p')).message).toMatch(/outside the playbook catalog/);
  });

  it('when a symlink leads to a sibling folder sharing the catalog name as prefix, then it is refused', async () => {
    expect((await rejection('sibling')).message).toMatch(/outside the playbook catalog/);
  });

  it('when no such playbook exists, then it is refused as unknown', async () => {
    expect((await rejection('nosuch')).message).toMatch(/no playbook named 'nosuch'/);
  });

  it('when the name is a dangling symlink, then it is refused as unknown', async () => {
    expect((await rejection('dangling')).message).toMatch(/no playbook named/);
  });

  it('when the name ends at a directory, then it is refused as unknown', async () => {
    expect((await rejection('dir')).message).toMatch(/no playbook named 'dir'/);
    expect((await rejection('net')).message).toMatch(/no playbook named 'net'/);
  });

  it('when the catalog directory itself is reached through a symlink, then names still resolve inside it', async () => {
    const link = path.join(base, 'link-to-cat');
    await symlink(root, link);
    expect(await new PlaybookCatalog(link).resolve('ping')).toEqual({
      name: 'ping',
      root,
      file: 'ping.yml',
      vars: [],
    });
  });

  it('when the catalog is listed, then playbooks inside it are named and escaping symlinks, sidecars and folders are not', async () => {
    await writeFile(path.join(root, 'ping.vars.yml'), 'count: { type: int, default: 1 }\n');
    await writeFile(path.join(root, 'bad.yml'), PLAY);
    await writeFile(path.join(root, 'bad.vars.yml'), 'ansible_host: { type: str }\n');
    try {
      const listing = await catalog.list();
      expect(listing.map((p) => p.name)).toEqual(['alias', 'bad', 'net/check', 'ping']);
      expect(listing.find((p) => p.name === 'ping')).toEqual({
        name: 'ping',
        vars: [{ name: 'count', type: 'int', required: false, default: 1 }],
        error: null,
      });
      expect(listing.find((p) => p.name === 'bad')?.error).toMatch(/ansible_host/);
      const err = await catalog.resolve('bad').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
    } finally {
      for (const f of ['ping.vars.yml', 'bad.yml', 'bad.vars.yml']) await rm(path.join(root, f));
    }
  });
});
