import { describe, expect, it } from 'vitest';
import type { KernelRoute } from '../../../src/hosts/host-state.ts';
import { routeDrift, ruleDrift } from '../../../src/live/drift.ts';
import type { FirewallRule } from '../../../src/firewall/types.ts';
import type { Route } from '../../../src/routes/types.ts';

const PROTO = 147;

const route = (over: Partial<Route> = {}): Route =>
  ({
    id: 'r1',
    host: 'h1',
    to: '203.0.113.0/24',
    family: 4,
    table: 254,
    metric: 0,
    via: null,
    dev: 'eth0',
    status: 'active',
    sync: { state: 'in_sync' },
    ...over,
  }) as Route;

const kernel = (over: Partial<KernelRoute> = {}): KernelRoute => ({
  family: 'inet',
  dst: '203.0.113.0/24',
  gateway: null,
  dev: 'eth0',
  protocol: '147',
  metric: null,
  table: 'main',
  scope: null,
  prefsrc: null,
  type: 'unicast',
  flags: [],
  ...over,
});

describe('routeDrift', () => {
  it('finds nothing when the kernel holds the route as asked', () => {
    expect(routeDrift([route()], [kernel()], PROTO)).toEqual([]);
  });

  it('finds a route missing from the kernel', () => {
    expect(routeDrift([route()], [], PROTO)).toEqual([{ id: 'r1', found: 'missing' }]);
  });

  it('finds a gateway where the route asked for none, as the apply module would replace it', () => {
    expect(routeDrift([route()], [kernel({ gateway: '198.51.100.1' })], PROTO)).toEqual([
      { id: 'r1', found: 'altered' },
    ]);
  });

  it('finds a route altered to another device or gateway', () => {
    expect(routeDrift([route()], [kernel({ dev: 'eth1' })], PROTO)).toEqual([
      { id: 'r1', found: 'altered' },
    ]);
    const via = route({ via: '198.51.100.1', dev: null });
    expect(routeDrift([via], [kernel({ gateway: '198.51.100.2' })], PROTO)).toEqual([
      { id: 'r1', found: 'altered' },
    ]);
  });

  it('does not count a route someone else installed (another protocol) as routeplane’s', () => {
    expect(routeDrift([route()], [kernel({ protocol: 'static' })], PROTO)).toEqual([
      { id: 'r1', found: 'missing' },
    ]);
  });

  it('leaves routes not believed in sync, or not active, to their own runs', () => {
    const applying = route({ sync: { state: 'applying' } as Route['sync'] });
    const paused = route({ id: 'r2', status: 'paused' });
    expect(routeDrift([applying, paused], [], PROTO)).toEqual([]);
  });

  it('matches an IPv6 route of metric 0 with the kernel’s 1024', () => {
    const v6 = route({ family: 6, to: '2001:db8:f000::/48' });
    const k = kernel({ family: 'inet6', dst: '2001:db8:f000::/48', metric: 1024 });
    expect(routeDrift([v6], [k], PROTO)).toEqual([]);
  });
});

describe('routeDrift, with several gateways in use (ECMP)', () => {
  const G = ['198.51.100.1', '198.51.100.2'];
  const ecmp = (activeVia: string[], over: Partial<Route> = {}) =>
    route({
      via: activeVia[0] ?? null,
      dev: null,
      failoverState: { activeVia, health: {}, lastSwitch: null },
      ...over,
    });
  const multi = (...hops: [string, string?, number?][]) =>
    kernel({
      gateway: null,
      dev: null,
      nexthops: hops.map(([gateway, dev = 'eth0', weight = 1]) => ({ gateway, dev, weight })),
    });

  it('finds nothing when the kernel holds the same paths, in either order', () => {
    expect(routeDrift([ecmp(G)], [multi([G[0]!], [G[1]!])], PROTO)).toEqual([]);
    expect(routeDrift([ecmp(G)], [multi([G[1]!], [G[0]!])], PROTO)).toEqual([]);
  });

  it('finds a multipath route altered: a path gone, another gateway, device or weight', () => {
    const altered = [{ id: 'r1', found: 'altered' }];
    const three = ['198.51.100.1', '198.51.100.2', '198.51.100.3'];
    expect(routeDrift([ecmp(three)], [multi([G[0]!], [G[1]!])], PROTO)).toEqual(altered);
    expect(routeDrift([ecmp(G)], [multi([G[0]!], ['198.51.100.9'])], PROTO)).toEqual(altered);
    const onEth0 = ecmp(G, { dev: 'eth0' });
    expect(routeDrift([onEth0], [multi([G[0]!], [G[1]!, 'eth1'])], PROTO)).toEqual(altered);
    expect(routeDrift([ecmp(G)], [multi([G[0]!], [G[1]!, 'eth0', 3])], PROTO)).toEqual(altered);
  });

  it('finds multipath where one gateway is asked, and a single path where several are', () => {
    const altered = [{ id: 'r1', found: 'altered' }];
    const one = route({ via: G[0]!, dev: null });
    expect(routeDrift([one], [multi([G[0]!], [G[1]!])], PROTO)).toEqual(altered);
    expect(routeDrift([ecmp(G)], [kernel({ gateway: G[0]! })], PROTO)).toEqual(altered);
    // One gateway in use is a plain route, whatever the candidates.
    expect(routeDrift([ecmp([G[1]!])], [kernel({ gateway: G[1]! })], PROTO)).toEqual([]);
  });

  it('matches IPv6 paths whatever the spelling of their gateways', () => {
    const v6 = ecmp(['2001:db8:100::1', '2001:db8:100::a'], {
      family: 6,
      to: '2001:db8:f000::/48',
      dev: 'eth0',
    });
    const k = kernel({
      family: 'inet6',
      dst: '2001:db8:f000::/48',
      metric: 1024,
      gateway: null,
      dev: null,
      nexthops: [
        { gateway: '2001:db8:100:0::a', dev: 'eth0', weight: 1 },
        { gateway: '2001:DB8:100::1', dev: 'eth0', weight: 1 },
      ],
    });
    expect(routeDrift([v6], [k], PROTO)).toEqual([]);
  });
});

describe('ruleDrift', () => {
  const rule = (id: string) =>
    ({ id, status: 'active', sync: { state: 'in_sync' } }) as unknown as FirewallRule;
  const table = (...ids: string[]) => ids.map((id) => ({ rule: { comment: `rp:${id}` } }));

  it('finds the rules routeplane’s table no longer carries', () => {
    const fw = { available: true, table: table('a'), ruleset: null, error: null };
    expect(ruleDrift([rule('a'), rule('b')], fw)).toEqual([{ id: 'b', found: 'missing' }]);
  });

  it('finds every rule missing when the table is gone', () => {
    const fw = { available: true, table: null, ruleset: null, error: null };
    expect(ruleDrift([rule('a')], fw)).toEqual([{ id: 'a', found: 'missing' }]);
  });

  it('says nothing when the firewall could not be read', () => {
    expect(
      ruleDrift([rule('a')], { available: true, table: null, ruleset: null, error: 'x' }),
    ).toEqual([]);
    expect(ruleDrift([rule('a')], null)).toEqual([]);
  });
});
