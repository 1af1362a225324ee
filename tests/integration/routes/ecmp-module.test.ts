import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import { canonicalPrefix, nexthopSet, type Nexthop } from '../../../src/routes/kernel-route.ts';
import { moduleRoute, moduleRoutesPayload } from '../../../src/routes/route-results.ts';
import type { Route } from '../../../src/routes/types.ts';
import { useLab } from '../../helpers/lab.ts';
import { localAnsibleEnv } from '../../helpers/local-ansible.ts';
import { ROUTE_PROTO } from '../../helpers/routes.ts';

// routeplane_routes with multipath (ECMP) routes, run by Ansible itself inside a lab host's
// namespace: what it installs, that the forwarding is compared as a set (the same paths in
// another order are unchanged), and moving between one path and two, IPv4 and IPv6. The
// desired routes are what routeplane sends (moduleRoute of a route with gateways in use).
const T = 180_000;

interface ModuleResult {
  failed?: boolean;
  msg?: string;
  changed: boolean;
  added: string[];
  replaced: string[];
  removed: { to: string }[];
  unchanged_count: number;
  errors: { id: string | null; error: string }[];
}

/** A raw `ip -j` route entry, as far as these tests read it. */
interface IpRoute {
  dst: string;
  protocol?: string;
  gateway?: string;
  dev?: string;
  flags?: string[];
  nexthops?: { gateway: string; dev: string; weight?: number; flags?: string[] }[];
}

describe('the apply module with multipath (ECMP) routes, on a lab host', { timeout: T }, () => {
  const fleet = useLab(2);
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'routeplane-ecmp-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  const h2 = () => fleet.lab.hosts[1]!;
  // Two gateways on h1's link in each family: the lab's bridge and h2.
  const gw4 = () => [fleet.lab.gatewayV4, h2().ipv4];
  const gw6 = () => [fleet.lab.gatewayV6, h2().ipv6];
  const TO4 = '203.0.113.0/24';
  const TO6 = '2001:db8:f0e0::/48';

  /** One module call in h1's namespace (a local connection: no address to protect). */
  async function apply(routes: unknown): Promise<ModuleResult> {
    const { stdout } = await execa(
      'ip',
      [
        'netns',
        'exec',
        fleet.lab.hosts[0]!.netns,
        'ansible',
        'localhost',
        '-i',
        'localhost,',
        '-c',
        'local',
        '-m',
        'routeplane_routes',
        '-a',
        JSON.stringify({ proto: Number(ROUTE_PROTO), local_connection: true, routes }),
      ],
      { env: localAnsibleEnv(tmp), extendEnv: false, reject: false },
    );
    const out = JSON.parse(stdout) as {
      plays: { tasks: { hosts: Record<string, ModuleResult> }[] }[];
    };
    return out.plays[0]!.tasks[0]!.hosts.localhost!;
  }

  /** A route as routeplane holds it, with these gateways in use (ECMP when two or more). */
  const route = (id: string, to: string, activeVia: string[], over: Partial<Route> = {}) =>
    ({
      id,
      to,
      table: 254,
      metric: 0,
      via: activeVia[0] ?? null,
      dev: null,
      scope: null,
      src: null,
      onlink: false,
      force: false,
      failoverState: { activeVia, health: {}, degraded: false, lastSwitch: null },
      ...over,
    }) as Route;

  /** What routeplane sends for these routes: one base64 string. */
  const payload = (...routes: Route[]) => moduleRoutesPayload(routes.map(moduleRoute));

  /** routeplane's entry for `to` in h1's kernel (table `table`), as `ip -j` prints it. */
  async function entry(to: string, table = 254): Promise<IpRoute | undefined> {
    const family = to.includes(':') ? 6 : 4;
    const text = await nsExec(fleet.lab, 'h1', [
      'ip',
      '-j',
      '-N',
      `-${family}`,
      'route',
      'show',
      'table',
      String(table),
    ]);
    const rows = (text.trim() ? JSON.parse(text) : []) as IpRoute[];
    return rows.find((r) => r.protocol === ROUTE_PROTO && canonicalPrefix(r.dst, family) === to);
  }

  const paths = (gateways: string[], dev = 'eth0', weight = 1): Nexthop[] =>
    nexthopSet({ nexthops: gateways.map((gateway) => ({ gateway, dev, weight })) });

  it('when a route has two gateways in use, then the kernel has one route with both nexthops, in each family', async () => {
    expect(moduleRoute(route('e4', TO4, gw4()))).toEqual({
      id: 'e4',
      to: TO4,
      table: 254,
      metric: 0,
      nexthops: gw4().map((via) => ({ via, weight: 1 })),
    });
    const res = await apply(payload(route('e4', TO4, gw4()), route('e6', TO6, gw6())));
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.errors).toEqual([]);
    expect(res.added.sort()).toEqual(['e4', 'e6']);
    for (const [to, gws] of [
      [TO4, gw4()],
      [TO6, gw6()],
    ] as const) {
      const k = await entry(to);
      expect(k?.nexthops, JSON.stringify(k)).toHaveLength(2);
      expect(k).not.toHaveProperty('gateway');
      expect(nexthopSet(k!)).toEqual(paths(gws));
    }
  });

  it('when the same route is applied with its gateways in the other order, then it is unchanged', async () => {
    const res = await apply(
      payload(route('e4', TO4, [...gw4()].reverse()), route('e6', TO6, [...gw6()].reverse())),
    );
    expect(res.failed, res.msg).toBeFalsy();
    expect(res).toMatchObject({ changed: false, added: [], replaced: [], unchanged_count: 2 });
  });

  it('when one gateway is left in use, then the route is replaced by a plain gateway, and unchanged after', async () => {
    const one = payload(route('e4', TO4, [gw4()[1]!]), route('e6', TO6, [gw6()[1]!]));
    const res = await apply(one);
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.replaced.sort()).toEqual(['e4', 'e6']);
    for (const [to, gw] of [
      [TO4, gw4()[1]!],
      [TO6, gw6()[1]!],
    ] as const) {
      const k = await entry(to);
      expect(k).toMatchObject({ gateway: gw, dev: 'eth0' });
      expect(k).not.toHaveProperty('nexthops');
    }
    expect(await apply(one)).toMatchObject({ changed: false, unchanged_count: 2 });
  });

  it('when both gateways are in use again, then the route has two nexthops again, and unchanged after', async () => {
    const two = payload(route('e4', TO4, gw4()), route('e6', TO6, gw6()));
    const res = await apply(two);
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.replaced.sort()).toEqual(['e4', 'e6']);
    expect(nexthopSet((await entry(TO4))!)).toEqual(paths(gw4()));
    expect(nexthopSet((await entry(TO6))!)).toEqual(paths(gw6()));
    expect(await apply(two)).toMatchObject({ changed: false, unchanged_count: 2 });
  });

  it('when the desired set is a subset of the kernel’s paths, or a plain gateway, then it is replaced', async () => {
    // [A] against the kernel's [A, B]: one member is rendered as a plain via.
    const res = await apply([
      { id: 'e4', to: TO4, nexthops: [{ via: gw4()[0]!, dev: 'eth0', weight: 7 }] },
      { id: 'e6', to: TO6, via: gw6()[0]! },
    ]);
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.replaced.sort()).toEqual(['e4', 'e6']);
    expect(await entry(TO4)).toMatchObject({ gateway: gw4()[0], dev: 'eth0' });
    expect(await entry(TO6)).toMatchObject({ gateway: gw6()[0], dev: 'eth0' });
  });

  it('when nexthops carry weights, a table, a metric and onlink, then the kernel holds them so and a re-apply is unchanged', async () => {
    const weighted = [
      {
        id: 'w4',
        to: TO4,
        table: 100,
        metric: 50,
        // onlink needs each nexthop's device (the kernel's rule): the route's dev is the
        // dev of each member that names none.
        dev: 'eth0',
        onlink: true,
        nexthops: [
          { via: gw4()[0]!, dev: 'eth0', weight: 3 },
          { via: gw4()[1]!, weight: 1 },
        ],
      },
      {
        id: 'w6',
        to: TO6,
        table: 100,
        metric: 50,
        nexthops: [{ via: gw6()[1]! }, { via: gw6()[0]!, weight: 256 }],
      },
    ];
    const res = await apply(weighted);
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.errors).toEqual([]);
    // The main table's e4 and e6 are not desired any more.
    expect(res.added.sort()).toEqual(['w4', 'w6']);
    expect(res.removed.map((r) => r.to).sort()).toEqual([TO6, TO4].sort());
    const k4 = (await entry(TO4, 100))!;
    expect(k4).toMatchObject({ metric: 50 });
    expect(nexthopSet(k4)).toEqual(
      nexthopSet({
        nexthops: [
          { gateway: gw4()[0], dev: 'eth0', weight: 3 },
          { gateway: gw4()[1], dev: 'eth0', weight: 1 },
        ],
      }),
    );
    expect(k4.nexthops!.map((h) => h.flags)).toEqual([['onlink'], ['onlink']]);
    const k6 = (await entry(TO6, 100))!;
    expect(nexthopSet(k6)).toEqual(
      nexthopSet({
        nexthops: [
          { gateway: gw6()[1], dev: 'eth0', weight: 1 },
          { gateway: gw6()[0], dev: 'eth0', weight: 256 },
        ],
      }),
    );
    expect(await apply(weighted)).toMatchObject({ changed: false, unchanged_count: 2 });
    // Another weight is another route.
    weighted[1]!.nexthops[1]!.weight = 2;
    expect(await apply(weighted)).toMatchObject({ changed: true, replaced: ['w6'] });
  });

  it('when nexthops are malformed, then the module fails naming the route and changes nothing', async () => {
    const bad = [
      [{ id: 'x', to: TO4, nexthops: [{ via: gw4()[0]!, weight: 0 }] }, /weight 0 is not 1\.\.256/],
      [{ id: 'x', to: TO4, via: gw4()[0]!, nexthops: [{ via: gw4()[1]! }] }, /either via or/],
      [{ id: 'x', to: TO4, nexthops: [{ via: 'gw', metric: 1 }] }, /unknown key 'metric'/],
      [{ id: 'x', to: TO4, nexthops: [] }, /at least one member/],
      // A value is one word of an ip -batch line: a newline would be a line of its own.
      [
        { id: 'x', to: TO4, nexthops: [{ via: gw4()[0]!, dev: 'eth0\nroute flush table main' }] },
        /dev .* is not one word/,
      ],
    ] as const;
    for (const [r, msg] of bad) {
      const res = await apply([r]); // one at a time: two cores
      expect(res.failed, JSON.stringify(r)).toBe(true);
      expect(res.msg).toMatch(msg);
      expect(res.msg).toContain(TO4);
    }
    expect(await entry(TO4, 100)).toBeDefined(); // still as the last good apply left it
  });

  it('when nothing is desired, then the multipath routes are removed', async () => {
    const res = await apply([]);
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.removed).toHaveLength(2);
    expect(await entry(TO4, 100)).toBeUndefined();
    expect(await entry(TO6, 100)).toBeUndefined();
  });
});
