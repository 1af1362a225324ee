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
