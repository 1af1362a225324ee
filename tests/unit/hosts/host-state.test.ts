import { describe, expect, it } from 'vitest';
import {
  hasMainRouteTo,
  parseLinks,
  parseRoutes,
  stateFromModuleData,
} from '../../../src/hosts/host-state.ts';

// Trimmed from real `ip -j addr show` and `ip -j route show table all` output.
const IP_ADDR = [
  {
    ifindex: 1,
    ifname: 'lo',
    flags: ['LOOPBACK', 'UP', 'LOWER_UP'],
    mtu: 65536,
    operstate: 'UNKNOWN',
    address: '00:00:00:00:00:00',
    addr_info: [
      { family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host' },
      { family: 'inet6', local: '::1', prefixlen: 128, scope: 'host' },
    ],
  },
  {
    ifindex: 7,
    ifname: 'eth0',
    flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
    mtu: 1500,
    operstate: 'UP',
    address: '62:1f:0a:3c:44:01',
    addr_info: [
      { family: 'inet', local: '198.51.100.18', prefixlen: 28, scope: 'global' },
      { family: 'inet6', local: 'fe80::601f:aff:fe3c:4401', prefixlen: 64, scope: 'link' },
      { family: 'packet' },
    ],
  },
  { ifindex: 9, flags: [] },
];

const IP_ROUTE = [
  { dst: 'default', gateway: '198.51.100.17', dev: 'eth0', protocol: 'static', flags: [] },
  {
    dst: '198.51.100.16/28',
    dev: 'eth0',
    protocol: 'kernel',
    scope: 'link',
    prefsrc: '198.51.100.18',
    flags: [],
  },
  { dst: '203.0.113.7', dev: 'eth0', protocol: '147', metric: 20, flags: ['onlink'] },
  { dst: '203.0.113.8', dev: 'eth0', scope: 'link', flags: [] },
  { type: 'blackhole', dst: '203.0.113.0/24', table: 100, protocol: 'boot', flags: [] },
  { type: 'local', dst: '127.0.0.1', table: 'local', dev: 'lo', protocol: 'kernel', flags: [] },
  { dst: '2001:db8:f000::1', family: 'inet6', dev: 'eth0', metric: 1024, flags: [] },
];

describe('parseLinks', () => {
  const { links, addresses } = parseLinks(IP_ADDR);

  it('when ip reports links, then each becomes a link with its MAC, MTU, state and flags', () => {
    expect(links).toEqual([
      {
        ifname: 'lo',
        lladdr: '00:00:00:00:00:00',
        mtu: 65536,
        state: 'UNKNOWN',
        flags: ['LOOPBACK', 'UP', 'LOWER_UP'],
      },
      {
        ifname: 'eth0',
        lladdr: '62:1f:0a:3c:44:01',
        mtu: 1500,
        state: 'UP',
        flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
      },
    ]);
  });

  it('when links carry inet and inet6 addresses, then each is listed with its link, and other families are skipped', () => {
    expect(
      addresses.map((a) => `${a.ifname} ${a.family} ${a.address}/${a.prefixlen} ${a.scope}`),
    ).toEqual([
      'lo inet 127.0.0.1/8 host',
      'lo inet6 ::1/128 host',
      'eth0 inet 198.51.100.18/28 global',
      'eth0 inet6 fe80::601f:aff:fe3c:4401/64 link',
    ]);
  });

  it('when the input is not a list, then there are no links', () => {
    expect(parseLinks({ error: 'x' })).toEqual({ links: [], addresses: [] });
  });
});

describe('parseRoutes', () => {
  const routes = parseRoutes(IP_ROUTE);

  it('when the local table is in the input, then its routes are left out', () => {
    expect(routes.map((r) => r.dst)).not.toContain('127.0.0.1/32');
    expect(routes).toHaveLength(6);
  });

  it('when a host route is printed without a length, then it is written as a full prefix, and default as 0.0.0.0/0', () => {
    expect(routes.map((r) => r.dst)).toEqual([
      '0.0.0.0/0',
      '198.51.100.16/28',
      '203.0.113.7/32',
      '203.0.113.8/32',
      '203.0.113.0/24',
      '2001:db8:f000::1/128',
    ]);
  });

  it('when fields are missing or numeric, then defaults apply: main table, unicast, inet, null', () => {
    expect(routes[0]).toEqual({
      family: 'inet',
      dst: '0.0.0.0/0',
      gateway: '198.51.100.17',
      dev: 'eth0',
      nexthops: null,
      protocol: 'static',
      metric: null,
      table: 'main',
      scope: null,
      prefsrc: null,
      type: 'unicast',
      flags: [],
    });
    expect(routes[4]).toMatchObject({ table: '100', type: 'blackhole', dev: null });
    expect(routes[5]).toMatchObject({ family: 'inet6', metric: 1024 });
  });

  it('when the protocol is a number without a name (as routeplane marks its own), then it is kept', () => {
    expect(routes[2]).toMatchObject({ protocol: '147', metric: 20, flags: ['onlink'] });
  });

  it('when iproute2 leaves the protocol out (proto boot), then it is null', () => {
    expect(routes[3]).toMatchObject({ dst: '203.0.113.8/32', protocol: null });
  });
});

// As `ip -j route show table all` prints multipath routes (Linux 6.18, iproute2 6.1): no
// top-level gateway or dev, the paths under `nexthops`, IPv4 and IPv6 alike.
const IP_ROUTE_MULTIPATH = [
  {
    dst: '198.51.100.0/24',
    protocol: '147',
    metric: 10,
    flags: [],
    nexthops: [
      { gateway: '192.0.2.2', dev: 'd0', weight: 1, flags: [] },
      { gateway: '10.9.0.2', dev: 'd1', weight: 3, flags: ['linkdown'] },
    ],
  },
  {
    dst: '2001:db8:ff::/48',
    family: 'inet6',
    protocol: '147',
    metric: 1024,
    flags: [],
    pref: 'medium',
    nexthops: [
      { gateway: '2001:db8:1::2', dev: 'd0', flags: [] }, // weight left out: 1
      { gateway: '2001:db8:2::2', dev: 'd1', weight: 2, flags: ['onlink'] },
    ],
  },
  { dst: '203.0.113.0/24', gateway: '192.0.2.2', dev: 'd0', flags: [], nexthops: [] },
];

describe('parseRoutes, given multipath (ECMP) routes', () => {
  const routes = parseRoutes(IP_ROUTE_MULTIPATH);

  it('when a route has nexthops, then they are kept in the kernel’s order and its own gateway and dev stay null', () => {
    expect(routes[0]).toMatchObject({
      dst: '198.51.100.0/24',
      gateway: null,
      dev: null,
      nexthops: [
        { gateway: '192.0.2.2', dev: 'd0', weight: 1 },
        { gateway: '10.9.0.2', dev: 'd1', weight: 3 },
      ],
    });
    expect(routes[1]).toMatchObject({
      family: 'inet6',
      gateway: null,
      dev: null,
      nexthops: [
        { gateway: '2001:db8:1::2', dev: 'd0', weight: 1 },
        { gateway: '2001:db8:2::2', dev: 'd1', weight: 2 },
      ],
    });
  });

  it('when a route has a single path (or an empty nexthops list), then nexthops is null', () => {
    expect(routes[2]).toMatchObject({ gateway: '192.0.2.2', dev: 'd0', nexthops: null });
    expect(parseRoutes(IP_ROUTE).map((r) => r.nexthops)).toEqual(Array(6).fill(null));
  });
});

describe('parseRoutes, given the normalised shape the gather module sends', () => {
  it('when the table is a number and default an all-zero prefix, then it reads as ip -j would name it', () => {
    const routes = parseRoutes([
      { dst: '::/0', family: 'inet6', table: 254, metric: 1024, gateway: '2001:db8::1' },
      { dst: '203.0.113.0/24', table: 253, flags: [] },
      { dst: '203.0.113.0/24', table: 255, type: 'local' },
      { dst: '::ffff:cb00:7100/120', family: 'inet6', table: 'vpn' },
    ]);
    expect(routes.map((r) => [r.dst, r.table])).toEqual([
      ['::/0', 'main'],
      ['203.0.113.0/24', 'default'],
      ['::ffff:203.0.113.0/120', 'vpn'],
    ]);
    expect(hasMainRouteTo(routes, '::/0')).toBe(true);
    expect(hasMainRouteTo(parseRoutes(IP_ROUTE), '0.0.0.0/0')).toBe(true);
    expect(hasMainRouteTo(parseRoutes(IP_ROUTE), '203.0.113.0/24')).toBe(false); // table 100
  });
});

describe('stateFromModuleData', () => {
  it('when the gather module returns links and routes, then the state carries both with the run and time', () => {
    const at = new Date('2026-01-01T00:00:00Z');
    const state = stateFromModuleData({ links: IP_ADDR, routes: IP_ROUTE }, 'run-1', at);
    expect(state).toMatchObject({ collectedAt: at, runId: 'run-1' });
    expect(state.links).toHaveLength(2);
    expect(state.addresses).toHaveLength(4);
    expect(state.routes).toHaveLength(6);
  });
});
