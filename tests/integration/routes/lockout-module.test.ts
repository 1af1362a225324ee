import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalPrefix } from '../../../src/routes/kernel-route.ts';
import { moduleRoutesPayload } from '../../../src/routes/route-results.ts';
import { useLab } from '../../helpers/lab.ts';
import { localAnsibleEnv } from '../../helpers/local-ansible.ts';
import { findRoute, ownedRoutes, ROUTE_PROTO } from '../../helpers/routes.ts';

// routeplane_routes' lockout guard, run by Ansible itself inside a lab host's namespace (a
// local connection, so the module's environment and arguments are exactly what the test says):
// the addresses it protects, when a route captures one (the main table's longest-prefix match
// would change), force, and failing closed.
const T = 120_000;

interface ModuleRef {
  id: string | null;
  to: string;
  table: number;
  metric: number;
  reason?: string;
  management_address?: string;
}
interface ModuleResult {
  failed?: boolean;
  msg?: string;
  /** Ids of the desired routes changed: a bulk's changes are short strings, not refs. */
  added: string[];
  replaced: string[];
  removed: ModuleRef[];
  unchanged_count: number;
  added_count: number;
  replaced_count: number;
  removed_count: number;
  changed: boolean;
  invocation?: unknown;
  conflicts: ModuleRef[];
  management_addresses: string[];
}

describe('the apply module guarding the management address, on a lab host', { timeout: T }, () => {
  const fleet = useLab(1);
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'routeplane-lockout-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  const gw = () => fleet.lab.gatewayV4;
  const h1 = () => fleet.lab.hosts[0]!;

  /** One module call in h1's namespace; `sshConnection` becomes its SSH_CONNECTION. */
  async function apply(
    args: Record<string, unknown>,
    sshConnection?: string,
  ): Promise<ModuleResult> {
    const env = localAnsibleEnv(tmp);
    if (sshConnection !== undefined) env.SSH_CONNECTION = sshConnection;
    const { stdout } = await execa(
      'ip',
      [
        'netns',
        'exec',
        h1().netns,
        'ansible',
        'localhost',
        '-i',
        'localhost,',
        '-c',
        'local',
        '-m',
        'routeplane_routes',
        '-a',
        JSON.stringify({ proto: Number(ROUTE_PROTO), ...args }),
      ],
      { env, extendEnv: false, reject: false },
    );
    const out = JSON.parse(stdout) as {
      plays: { tasks: { hosts: Record<string, ModuleResult> }[] }[];
    };
    return out.plays[0]!.tasks[0]!.hosts.localhost!;
  }

  const ssh = (client: string) => `${client} 40022 ${h1().ipv4} 22`;
  const tos = (refs: ModuleRef[]) => refs.map((r) => r.to).sort();

  it('when the module has no management address, no SSH_CONNECTION and no local connection, then it fails closed and changes nothing', async () => {
    const res = await apply({ routes: [{ id: 'a', to: '203.0.113.0/24', dev: 'eth0' }] });
    expect(res.failed).toBe(true);
    expect(res.msg).toMatch(/no management address to protect/);
    expect(res.msg).toMatch(/local_connection/);
    expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), { to: '203.0.113.0/24' })).toBe(undefined);
  });

  it('when the connection is local, then there is nothing to protect and any route is applied', async () => {
    const res = await apply({
      local_connection: true,
      routes: [{ id: 'a', to: `${gw()}/32`, dev: 'eth0' }],
    });
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.added).toEqual(['a']);
    expect(res.management_addresses).toEqual([]);
    expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), { to: `${gw()}/32` })).toMatchObject({
      dev: 'eth0',
    });
    const cleared = await apply({ local_connection: true, routes: [] });
    expect(tos(cleared.removed)).toEqual([`${gw()}/32`]);
  });

  it('when management_address is on the connected /28, then a longer prefix captures it and a default route or a worse metric does not', async () => {
    const slash29 = canonicalPrefix(`${gw()}/29`);
    const res = await apply({
      management_address: gw(),
      routes: [
        { id: 'host', to: `${gw()}/32`, via: h1().ipv4 },
        { id: 'longer', to: slash29, dev: 'eth0' },
        { id: 'default', to: '0.0.0.0/0', via: gw(), metric: 10 },
        { id: 'same', to: fleet.lab.prefixV4, dev: 'eth0', metric: 7 },
        { id: 'other-table', to: `${gw()}/32`, dev: 'eth0', table: 100 },
      ],
    });
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.management_addresses).toEqual([gw()]);
    expect(res.conflicts.map((c) => [c.id, c.reason, c.management_address]).sort()).toEqual([
      ['host', 'lockout', gw()],
      ['longer', 'lockout', gw()],
    ]);
    expect([...res.added].sort()).toEqual(['default', 'other-table', 'same']);
    const owned = await ownedRoutes(fleet.lab, 'h1');
    expect(findRoute(owned, { to: `${gw()}/32` })).toBeUndefined();
    expect(findRoute(owned, { to: slash29 })).toBeUndefined();
    expect(findRoute(owned, { to: '0.0.0.0/0', metric: 10 })).toMatchObject({ gateway: gw() });
    expect(findRoute(owned, { to: `${gw()}/32`, table: 100 })).toMatchObject({ dev: 'eth0' });
    await apply({ local_connection: true, routes: [] });
  });

  it('when SSH_CONNECTION names the client as IPv4-mapped IPv6, then that IPv4 address is protected', async () => {
    const res = await apply(
      { routes: [{ id: 'host', to: `${gw()}/32`, dev: 'eth0' }] },
      ssh(`::ffff:${gw()}`),
    );
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.management_addresses).toEqual([gw()]);
    expect(res.conflicts).toEqual([
      expect.objectContaining({ id: 'host', reason: 'lockout', management_address: gw() }),
    ]);
  });

  it('when management_address and SSH_CONNECTION differ, then both are protected', async () => {
    // 203.0.113.1 is reached through h1's default route (/0): any prefix of it captures it.
    const res = await apply(
      {
        management_address: '203.0.113.1',
        routes: [
          { id: 'mgmt', to: '203.0.113.0/24', via: gw() },
          { id: 'ssh', to: `${gw()}/32`, dev: 'eth0' },
          { id: 'neither', to: '203.0.113.128/25', via: gw() },
        ],
      },
      ssh(gw()),
    );
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.management_addresses).toEqual(['203.0.113.1', gw()]);
    expect(res.conflicts.map((c) => [c.id, c.management_address]).sort()).toEqual([
      ['mgmt', '203.0.113.1'],
      ['ssh', gw()],
    ]);
    expect(res.added).toEqual(['neither']);
    await apply({ local_connection: true, routes: [] });
  });

  it('when a capturing route says force, then it is installed, and once it is the best match the same route without force is not a new capture', async () => {
    const route = { id: 'host', to: `${gw()}/32`, dev: 'eth0' };
    const forced = await apply({ management_address: gw(), routes: [{ ...route, force: true }] });
    expect(forced.failed, forced.msg).toBeFalsy();
    expect(forced.added).toEqual(['host']);
    expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), { to: `${gw()}/32` })).toMatchObject({
      dev: 'eth0',
      gateway: null,
    });
    // Already owned and already the best match: unchanged, not a conflict (no flapping).
    const again = await apply({ management_address: gw(), routes: [route] });
    expect(again.conflicts).toEqual([]);
    expect(again.unchanged_count).toBe(1);
    expect([...again.added, ...again.replaced]).toEqual([]);
    await apply({ local_connection: true, routes: [] });
    expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), { to: `${gw()}/32` })).toBeUndefined();
  });

  it('when management_address is not an address, then the module fails and changes nothing', async () => {
    const res = await apply({
      management_address: 'gateway.example',
      routes: [{ id: 'a', to: '203.0.113.0/24', dev: 'eth0' }],
    });
    expect(res.failed).toBe(true);
    expect(res.msg).toMatch(/management_address 'gateway.example' is not an IP address/);
    expect(await ownedRoutes(fleet.lab, 'h1')).toEqual([]);
  });

  it('when the routes come as routeplane sends them (base64 of their JSON), then they apply as the same list would, with counts and ids, and the arguments are not echoed back', async () => {
    const routes = [
      { id: 'v4', to: '203.0.113.64/26', dev: 'eth0', table: 254, metric: 0 },
      { id: 'v6', to: '2001:db8:f000:1::/64', dev: 'eth0', table: 254, metric: 1024 },
    ];
    const res = await apply({ local_connection: true, routes: moduleRoutesPayload(routes) });
    expect(res.failed, res.msg).toBeFalsy();
    expect([...res.added].sort()).toEqual(['v4', 'v6']);
    expect(res).toMatchObject({ added_count: 2, replaced_count: 0, removed_count: 0 });
    expect(JSON.stringify(res.invocation)).not.toContain('203.0.113.64');
    const again = await apply({ local_connection: true, routes: moduleRoutesPayload(routes) });
    expect(again).toMatchObject({ added: [], replaced: [], unchanged_count: 2, changed: false });
    const cleared = await apply({ local_connection: true, routes: moduleRoutesPayload([]) });
    expect(cleared.removed_count).toBe(2);
    expect(tos(cleared.removed).sort()).toEqual(['2001:db8:f000:1::/64', '203.0.113.64/26']);
  });

  it('when a route is malformed, then the module fails naming it and changes nothing', async () => {
    for (const [routes, message] of [
      ['not base64!', /base64 of a JSON list/],
      [[{ id: 'a', dev: 'eth0' }], /routes\[0\]: expected a dict with to/],
      [[{ id: 'a', to: '203.0.113.0/24', dev: 'eth0', color: 'red' }], /unknown key 'color'/],
      [[{ id: 'a', to: '203.0.113.0/24', metric: true }], /metric/],
      [[{ id: 'a', to: '203.0.113.0/33' }], /routes\[0\] \(203.0.113.0\/33\)/],
    ] as const) {
      const res = await apply({ local_connection: true, routes });
      expect(res.failed, JSON.stringify(routes)).toBe(true);
      expect(res.msg).toMatch(message);
    }
    expect(await ownedRoutes(fleet.lab, 'h1')).toEqual([]);
  });
});
