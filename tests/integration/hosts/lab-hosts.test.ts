import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsExec, startSshd, stopSshd } from '../../../src/lab/index.ts';
import { canonicalPrefix } from '../../../src/routes/kernel-route.ts';
import { useLab } from '../../helpers/lab.ts';
import { expectProblem } from '../../helpers/problem.ts';
import { startTestServer, TOKENS, type TestServer } from '../../helpers/server.ts';

// Each refresh is a real ansible-playbook run over ssh: seconds, not milliseconds.
const T = 60_000;
const TEST_ROUTE = '203.0.113.0/24';

interface IpLink {
  ifname: string;
  address?: string;
  mtu?: number;
  addr_info: { family: string; local: string; prefixlen: number; scope: string }[];
}
interface IpRoute {
  dst: string;
  table?: string;
}

const addressKeys = (
  list: { family: string; address: string; prefixlen: number; scope: string }[],
) => list.map((a) => `${a.family} ${a.address}/${a.prefixlen} ${a.scope}`).sort();

describe('hosts, given a lab of 3 hosts as the inventory', { timeout: T }, () => {
  const fleet = useLab(3);
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath });
  }, T);
  afterAll(async () => {
    await server?.close();
  });

  const ns = async <X>(host: string, argv: string[]) =>
    JSON.parse(await nsExec(fleet.lab, host, argv)) as X;
  const kernelMainRoutes = async (host: string) => {
    // routeplane's one kernel normalisation: `default` as 0.0.0.0/0 or ::/0, full prefixes.
    const full = (dst: string, v6: boolean) => canonicalPrefix(dst, v6 ? 6 : 4);
    const v4 = await ns<IpRoute[]>(host, ['ip', '-j', '-4', 'route', 'show', 'table', 'main']);
    const v6 = await ns<IpRoute[]>(host, ['ip', '-j', '-6', 'route', 'show', 'table', 'main']);
    return [...v4.map((r) => full(r.dst, false)), ...v6.map((r) => full(r.dst, true))].sort();
  };
  const apiMainRoutes = (body: { state: { routes: { dst: string; table: string }[] } }) =>
    body.state.routes
      .filter((r) => r.table === 'main')
      .map((r) => r.dst)
      .sort();

  it('when the fleet is listed, then h1..h3 come with their group and non-secret vars, not yet seen', async () => {
    const res = await server.request('GET', '/v1/hosts', { token: 'viewer' });
    expect(res.status).toBe(200);
    expect(res.body.items.map((h: { name: string }) => h.name)).toEqual(['h1', 'h2', 'h3']);
    for (const [i, item] of (res.body.items as Record<string, unknown>[]).entries()) {
      const host = fleet.lab.hosts[i]!;
      expect(item).toMatchObject({
        groups: ['lab'],
        local: false,
        local_reason: null,
        read_only: false,
        reachable: null,
        last_seen_at: null,
        last_error: null,
      });
      // The allowlist: address and user, and what the lab's routeplane_public_vars names.
      expect(item.vars).toEqual({
        ansible_host: host.ipv4,
        ansible_user: 'root',
        lab_id: fleet.lab.id,
        netns: host.netns,
        lab_ipv6: host.ipv6,
      });
    }
  });

  it('when the fleet is listed, then neither the private key path nor the key itself is in the answer', async () => {
    const res = await server.request('GET', '/v1/hosts', { token: 'viewer' });
    const key = await readFile(fleet.lab.privateKeyPath, 'utf8');
    expect(res.text).not.toContain(fleet.lab.privateKeyPath);
    expect(res.text).not.toContain('PRIVATE KEY');
    expect(res.text).not.toContain(key.split('\n')[1]!);
  });

  let firstCollectedAt: string;

  it('when h1 is fetched with refresh=true, then its eth0 addresses are the ones the kernel reports', async () => {
    const res = await server.request('GET', '/v1/hosts/h1?refresh=true', { token: 'viewer' });
    expect(res.status, res.text).toBe(200);
    const [eth0] = await ns<IpLink[]>('h1', ['ip', '-j', 'addr', 'show', 'dev', 'eth0']);
    const apiEth0 = res.body.state.addresses.filter((a: { ifname: string }) => a.ifname === 'eth0');
    expect(addressKeys(apiEth0)).toEqual(
      addressKeys(eth0!.addr_info.map((a) => ({ ...a, address: a.local }))),
    );
    expect(addressKeys(apiEth0)).toContain(`inet ${fleet.lab.hosts[0]!.ipv4}/28 global`);
    expect(res.body).toMatchObject({ name: 'h1', reachable: true, last_error: null });
    firstCollectedAt = res.body.state.collected_at;
  });

  it('when h1 was refreshed, then its routes are the kernel main table, with the lab link route', async () => {
    const res = await server.request('GET', '/v1/hosts/h1', { token: 'viewer' });
    expect(apiMainRoutes(res.body)).toEqual(await kernelMainRoutes('h1'));
    expect(res.body.state.routes).toContainEqual(
      expect.objectContaining({
        family: 'inet',
        dst: fleet.lab.prefixV4,
        dev: 'eth0',
        protocol: 'kernel',
        scope: 'link',
        prefsrc: fleet.lab.hosts[0]!.ipv4,
        table: 'main',
      }),
    );
  });

  it('when h1 was refreshed, then a succeeded gather run by the viewer and a reachable snapshot are stored', async () => {
    const { knex } = server.database.db;
    const runs = await knex('runs').where({ kind: 'gather' }).whereRaw(`hosts @> '["h1"]'::jsonb`);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ status: 'succeeded', requested_by: 'viewer', rc: 0 });
    const [row] = await knex('host_snapshots').where({ host: 'h1' });
    expect(row).toMatchObject({ reachable: true, last_error: null, run_id: runs[0].id });
  });

  it('when a route is added by hand inside h1, then a plain GET still shows the old snapshot', async () => {
    await nsExec(fleet.lab, 'h1', ['ip', 'route', 'add', TEST_ROUTE, 'dev', 'eth0']);
    const res = await server.request('GET', '/v1/hosts/h1', { token: 'viewer' });
    expect(res.status).toBe(200);
    expect(res.body.state.collected_at).toBe(firstCollectedAt);
    expect(res.body.state.routes.map((r: { dst: string }) => r.dst)).not.toContain(TEST_ROUTE);
  });

  it('when h1 is then fetched with refresh=true, then the hand-added route is there', async () => {
    const res = await server.request('GET', '/v1/hosts/h1?refresh=true', { token: 'viewer' });
    expect(res.status, res.text).toBe(200);
    expect(Date.parse(res.body.state.collected_at)).toBeGreaterThan(Date.parse(firstCollectedAt));
    expect(res.body.state.routes).toContainEqual({
      family: 'inet',
      dst: TEST_ROUTE,
      gateway: null,
      dev: 'eth0',
      // `ip route add` defaults to proto boot, which iproute2 leaves out of its output
      protocol: null,
      metric: null,
      table: 'main',
      scope: 'link',
      prefsrc: null,
      type: 'unicast',
      flags: [],
    });
    expect(apiMainRoutes(res.body)).toEqual(await kernelMainRoutes('h1'));
  });

  it('when the interfaces of h1 are listed, then lo and eth0 come with their MAC, MTU and addresses', async () => {
    const res = await server.request('GET', '/v1/hosts/h1/interfaces', { token: 'viewer' });
    expect(res.status).toBe(200);
    const kernel = await ns<IpLink[]>('h1', ['ip', '-j', 'addr', 'show']);
    expect(res.body.host).toBe('h1');
    expect(res.body.items.map((i: { ifname: string }) => i.ifname).sort()).toEqual(
      kernel.map((l) => l.ifname).sort(),
    );
    const eth0 = res.body.items.find((i: { ifname: string }) => i.ifname === 'eth0');
    const kEth0 = kernel.find((l) => l.ifname === 'eth0')!;
    expect(eth0).toMatchObject({ lladdr: kEth0.address, mtu: kEth0.mtu, state: 'UP' });
    expect(addressKeys(eth0.addresses)).toEqual(
      addressKeys(kEth0.addr_info.map((a) => ({ ...a, address: a.local }))),
    );
  });

  it('when one interface of h1 is fetched, then it is the same as in the list', async () => {
    const list = await server.request('GET', '/v1/hosts/h1/interfaces', { token: 'viewer' });
    const res = await server.request('GET', '/v1/hosts/h1/interfaces/eth0', { token: 'viewer' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual(list.body.items.find((i: { ifname: string }) => i.ifname === 'eth0'));
  });

  it('when the interfaces of a never-gathered host are listed, then it is gathered first', async () => {
    const res = await server.request('GET', '/v1/hosts/h2/interfaces', { token: 'viewer' });
    expect(res.status, res.text).toBe(200);
    const eth0 = res.body.items.find((i: { ifname: string }) => i.ifname === 'eth0');
    expect(addressKeys(eth0.addresses)).toContain(`inet ${fleet.lab.hosts[1]!.ipv4}/28 global`);
  });

  it('when the host is not in the inventory, then 404 problem naming it', async () => {
    const res = await server.request('GET', '/v1/hosts/h9?refresh=true', { token: 'viewer' });
    expectProblem(res, 404, 'not-found', { detail: /'h9'/ });
  });

  it('when the interface does not exist on the host, then 404 problem naming it', async () => {
    const res = await server.request('GET', '/v1/hosts/h1/interfaces/eth9', { token: 'viewer' });
    expectProblem(res, 404, 'not-found', { detail: /'eth9'/ });
  });

  describe('when sshd of h3 is stopped', () => {
    beforeAll(async () => {
      await stopSshd(fleet.lab, 'h3');
    });
    afterAll(async () => {
      await startSshd(fleet.lab, 'h3');
    });

    it('then refreshing h3 is a 502 problem naming the host and the gather run', async () => {
      const res = await server.request('GET', '/v1/hosts/h3?refresh=true', { token: 'viewer' });
      expectProblem(res, 502, 'host-unreachable');
      expect(res.body).toMatchObject({
        host: 'h3',
        run_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      });
      const run = await server.database.db.knex('runs').where({ id: res.body.run_id }).first();
      expect(run).toMatchObject({ kind: 'gather', hosts: ['h3'] });
      expect(run.summary.h3).toMatchObject({ status: 'unreachable' });
    });

    it('then the fleet list shows h3 unreachable with the error, and h1 still reachable', async () => {
      const res = await server.request('GET', '/v1/hosts', { token: 'viewer' });
      type Item = { name: string; last_error: string | null; last_seen_at: string | null };
      const byName = Object.fromEntries((res.body.items as Item[]).map((h) => [h.name, h]));
      expect(byName.h3).toMatchObject({ reachable: false, last_seen_at: null });
      expect(byName.h3?.last_error).toMatch(/\S/);
      expect(byName.h1).toMatchObject({ reachable: true, last_error: null });
      expect(Date.parse(byName.h1?.last_seen_at ?? '')).not.toBeNaN();
    });

    it('then no token was written into the server log while gathering', () => {
      const text = server.logs.join('\n');
      for (const token of Object.values(TOKENS)) expect(text).not.toContain(token);
    });
  });
});
