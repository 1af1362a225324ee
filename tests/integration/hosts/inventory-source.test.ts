import { execa } from 'execa';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InventoryError } from '../../../src/hosts/inventory.ts';
import { InventorySource } from '../../../src/hosts/inventory-source.ts';
import { CountingRunner } from '../../helpers/runs.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

// Real ansible-inventory: routeplane's view of the fleet is whatever Ansible's parser says.
const T = 120_000;

const INI = `
[web]
web[01:03] ansible_host=198.51.100.7

[ops]
ctl ansible_host=198.51.100.9

[dc:children]
web
ops
`;

const source = (inventoryPath: string, vaultPassword?: string) =>
  new InventorySource({
    inventoryPath,
    ansibleInventory: 'ansible-inventory',
    vaultPassword,
    vaultPasswordFile: undefined,
  });

describe('the inventory as Ansible reads it', { timeout: T }, () => {
  let dir: string;
  let ini: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'inventory-source-'));
    ini = path.join(dir, 'hosts.ini');
    await writeFile(ini, INI);
    await mkdir(path.join(dir, 'host_vars'));
    await mkdir(path.join(dir, 'group_vars'));
    // Made local behind the inventory file's back: the hand parser never saw this.
    await writeFile(path.join(dir, 'host_vars', 'ctl.yml'), 'ansible_connection: local\n');
    await writeFile(
      path.join(dir, 'group_vars', 'web.yml'),
      'rack: r12\nsnmp_community: s3cret\nrouteplane_public_vars: [rack]\n',
    );
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('when the inventory is INI with a range, then the range is expanded to web01..web03', async () => {
    const inv = await source(ini).current();
    expect(inv.groups.get('web')).toEqual(['web01', 'web02', 'web03']);
    expect(inv.hosts.get('web02')?.groups).toEqual(['dc', 'web']);
  });

  it('when group_vars/ beside the inventory sets vars, then the hosts have them', async () => {
    const inv = await source(ini).current();
    expect(inv.hosts.get('web01')?.vars).toMatchObject({ rack: 'r12', snmp_community: 's3cret' });
  });

  it('when host_vars/ beside the inventory sets a local connection, then the host is the controller', async () => {
    const inv = await source(ini).current();
    expect(inv.hosts.get('ctl')).toMatchObject({
      local: true,
      localReason: 'ansible_connection is local',
    });
    expect(inv.hosts.get('web01')?.local).toBe(false);
  });

  it('when a file under the source changes, then the next read sees it without a restart', async () => {
    const inv = source(ini);
    expect((await inv.current()).hosts.has('web04')).toBe(false);
    await writeFile(path.join(dir, 'host_vars', 'web01.yml'), 'ansible_port: 2201\n');
    await new Promise((r) => setTimeout(r, 300));
    expect((await inv.current()).hosts.get('web01')?.vars.ansible_port).toBe(2201);
    await rm(path.join(dir, 'host_vars', 'web01.yml'));
  });

  it('when the source is a directory, then every inventory in it is read with its host_vars', async () => {
    const d = path.join(dir, 'inv.d');
    await mkdir(path.join(d, 'host_vars'), { recursive: true });
    await writeFile(path.join(d, 'lab.yml'), 'lab:\n  hosts:\n    y1: {}\n    y2: {}\n');
    await writeFile(path.join(d, 'edge'), '[edge]\nz1\n');
    await writeFile(path.join(d, 'host_vars', 'y2.yml'), 'ansible_host: 127.0.0.2\n');
    const inv = await source(d).current();
    expect([...inv.hosts.keys()].sort()).toEqual(['y1', 'y2', 'z1']);
    expect(inv.hosts.get('y2')?.local).toBe(true);
  });

  it('when the source is not an inventory Ansible can parse, then reading it fails instead of listing no hosts', async () => {
    const bad = path.join(dir, 'bad.yml');
    await writeFile(bad, 'all:\n  hosts: [a, b\n');
    await expect(source(bad).current()).rejects.toThrow(InventoryError);
  });

  it('when a var is vaulted, then the inventory reads with the vault password and the value is never public', async () => {
    const password = 'inventory-vault-pw';
    const pwFile = path.join(dir, 'pw');
    await writeFile(pwFile, password);
    const { stdout } = await execa('ansible-vault', [
      'encrypt_string',
      '--vault-password-file',
      pwFile,
      'the-secret',
      '--name',
      'db_password',
    ]);
    const vaulted = path.join(dir, 'vaulted');
    await mkdir(path.join(vaulted, 'host_vars'), { recursive: true });
    await writeFile(path.join(vaulted, 'hosts.yml'), 'all:\n  hosts:\n    v1: {}\n');
    await writeFile(
      path.join(vaulted, 'host_vars', 'v1.yml'),
      `${stdout}\nrouteplane_public_vars: [db_password]\n`,
    );
    const inv = await source(path.join(vaulted, 'hosts.yml'), password).current();
    expect(inv.hosts.has('v1')).toBe(true);
    const { publicVars } = await import('../../../src/hosts/inventory.ts');
    expect(JSON.stringify(publicVars(inv.hosts.get('v1')!.vars))).not.toContain('the-secret');
    expect(publicVars(inv.hosts.get('v1')!.vars)).toEqual({});
  });
});

describe('writes and runs on a host made local through host_vars', { timeout: T }, () => {
  const runner = new CountingRunner();
  let dir: string;
  let server: TestServer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'inventory-local-'));
    await writeFile(path.join(dir, 'hosts.ini'), INI);
    await mkdir(path.join(dir, 'host_vars'));
    await writeFile(path.join(dir, 'host_vars', 'ctl.yml'), 'ansible_connection: local\n');
    server = await startTestServer({ INVENTORY: path.join(dir, 'hosts.ini') }, { runner });
  }, T);

  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('when a route is created on it, then 409 and nothing is stored or run', async () => {
    const res = await server.request('POST', '/v1/routes', {
      body: { host: 'ctl', to: '203.0.113.0/24', via: '198.51.100.1' },
    });
    expect(res.status, res.text).toBe(409);
    expect(res.body.detail).toMatch(/ALLOW_LOCAL_WRITES/);
    expect(Number((await server.database.db.knex('routes').count())[0]!.count)).toBe(0);
    expect(runner.specs).toEqual([]);
  });

  it('when a catalog playbook targets it, then 409 and nothing runs', async () => {
    const res = await server.request('POST', '/v1/runs', {
      body: { playbook: 'ping', limit: ['ctl'] },
    });
    expect(res.status, res.text).toBe(409);
    expect(runner.specs).toEqual([]);
  });

  it('when a viewer lists hosts, then the range is expanded and the local host says why it is read-only', async () => {
    const res = await server.request('GET', '/v1/hosts', { token: 'viewer' });
    expect(res.status).toBe(200);
    const names = res.body.items.map((h: { name: string }) => h.name);
    expect(names).toEqual(['ctl', 'web01', 'web02', 'web03']);
    expect(res.body.items[0]).toMatchObject({
      local: true,
      local_reason: 'ansible_connection is local',
      read_only: true,
    });
  });
});
