import path from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import {
  nexthopSet,
  normaliseKernelRoute,
  sameNexthops,
  type Nexthop,
  type RawForwarding,
  type RawKernelRoute,
} from '../../../src/routes/kernel-route.ts';
import { useLab } from '../../helpers/lab.ts';
import { REPO } from '../../helpers/server.ts';

// One normalisation per language: the modules' Python (playbooks/module_utils/routeplane_kernel.py,
// run here with the Python Ansible runs modules with) and src/routes/kernel-route.ts must give
// every route the same identity, whichever way `ip` printed it.
const T = 90_000;
const PYTHON = '/usr/bin/python3';

interface Case {
  raw: RawKernelRoute & Record<string, unknown>;
  family: 4 | 6;
}
type Answer = { family: number; dst: string; table: number; metric: number } | { error: true };

const PY = `
import json, sys
from routeplane_kernel import normalize_route
out = []
for c in json.load(sys.stdin):
    try:
        out.append(normalize_route(c["raw"], c["family"]))
    except (KeyError, ValueError):
        out.append({"error": True})
print(json.dumps(out))
`;

async function python(cases: Case[]): Promise<Answer[]> {
  const { stdout } = await execa(PYTHON, ['-c', PY], {
    input: JSON.stringify(cases),
    env: { PYTHONPATH: path.join(REPO, 'playbooks', 'module_utils') },
    extendEnv: false,
  });
  return JSON.parse(stdout) as Answer[];
}

// The forwarding of an entry as a set (nexthop_set / nexthopSet), and whether each `desired`
// forwarding is it (same_nexthops / sameNexthops; a desired member without dev is any dev).
interface HopCase {
  raw: Record<string, unknown>;
  desired?: { gateway: string | null; dev?: string; weight?: number }[][];
}
type HopAnswer = { set: Nexthop[]; same: boolean[] } | { error: true };

const PY_HOPS = `
import json, sys
from routeplane_kernel import nexthop_set, same_nexthops
out = []
for c in json.load(sys.stdin):
    try:
        have = nexthop_set(c["raw"])
        same = [
            same_nexthops([(h["gateway"], h.get("dev"), h.get("weight")) for h in want], have)
            for want in c.get("desired", [])
        ]
        out.append({"set": [{"gateway": g, "dev": d, "weight": w} for g, d, w in have], "same": same})
    except (KeyError, ValueError, TypeError, AttributeError):
        out.append({"error": True})
print(json.dumps(out))
`;

async function pythonHops(cases: HopCase[]): Promise<HopAnswer[]> {
  const { stdout } = await execa(PYTHON, ['-c', PY_HOPS], {
    input: JSON.stringify(cases),
    env: { PYTHONPATH: path.join(REPO, 'playbooks', 'module_utils') },
    extendEnv: false,
  });
  return JSON.parse(stdout) as HopAnswer[];
}

function typescriptHops(cases: HopCase[]): HopAnswer[] {
  return cases.map((c) => {
    try {
      const have = nexthopSet(c.raw);
      const same = (c.desired ?? []).map((want) =>
        sameNexthops(
          want.map((h) => ({ gateway: h.gateway, dev: h.dev ?? null, weight: h.weight ?? 1 })),
          have,
        ),
      );
      return { set: have, same };
    } catch {
      return { error: true };
    }
  });
}

function typescript(cases: Case[]): Answer[] {
  return cases.map((c) => {
    try {
      return normaliseKernelRoute(c.raw, c.family);
    } catch {
      return { error: true };
    }
  });
}

// Shapes captured from iproute2 6.x: `ip -j` (names) and `ip -N -j` (numbers) of the same routes.
const CAPTURED: Case[] = [
  // default route, both spellings, both families
  { family: 4, raw: { dst: 'default', gateway: '198.51.100.17', dev: 'eth0', flags: [] } },
  { family: 4, raw: { dst: '0.0.0.0/0', table: 'main', gateway: '198.51.100.17' } },
  { family: 6, raw: { dst: 'default', gateway: '2001:db8:100::1', metric: 1024 } },
  { family: 6, raw: { dst: '::/0', table: '254', metric: 1024 } },
  // tables: absent, names, numbers as text and as numbers
  { family: 4, raw: { dst: '203.0.113.0/25', table: '100', protocol: '147' } },
  { family: 4, raw: { dst: '203.0.113.0/25', table: 100 } },
  { family: 4, raw: { type: 'local', dst: '127.0.0.1', table: 'local', dev: 'lo' } },
  { family: 4, raw: { type: 'local', dst: '127.0.0.1', table: '255', dev: 'lo' } },
  { family: 4, raw: { dst: '203.0.113.9', table: 'default' } },
  { family: 4, raw: { dst: '203.0.113.9', table: '253' } },
  { family: 4, raw: { dst: '203.0.113.9', table: 4294967295 } },
  { family: 4, raw: { dst: '203.0.113.9', table: 'vpn' } },
  // metric absent, 0 and set, per family
  { family: 4, raw: { dst: '203.0.113.7', dev: 'eth0' } },
  { family: 4, raw: { dst: '203.0.113.7', dev: 'eth0', metric: 0 } },
  { family: 4, raw: { dst: '203.0.113.7', dev: 'eth0', metric: 3000000000 } },
  { family: 6, raw: { dst: '2001:db8:f000::1', dev: 'eth0' } },
  { family: 6, raw: { dst: '2001:db8:f000::1', dev: 'eth0', metric: 0 } },
  { family: 6, raw: { dst: '2001:db8:f000::/48', dev: 'eth0', metric: 1 } },
  { family: 6, raw: { dst: '2001:db8:f000::/48', metric: 4294967295 } },
  // host routes without length; IPv6 spellings; IPv4-mapped IPv6
  { family: 6, raw: { dst: '2001:0DB8:F000:0000::0001/128' } },
  { family: 6, raw: { dst: '2001:db8:0:1:1:1:1:1' } },
  { family: 6, raw: { dst: '::ffff:203.0.113.0/120', metric: 1024 } },
  { family: 6, raw: { dst: '::ffff:cb00:7100/120', metric: 1024 } },
  { family: 6, raw: { dst: '::ffff:203.0.113.5' } },
  { family: 6, raw: { dst: 'fe80::/64', dev: 'eth0', metric: 256, protocol: 'kernel' } },
  { family: 6, raw: { type: 'multicast', dst: 'ff00::/8', table: 'local', metric: 256 } },
  // host bits set (the kernel never prints them, both sides clear them) and nonsense
  { family: 4, raw: { dst: '203.0.113.77/24' } },
  { family: 4, raw: { dst: 'not-an-address' } },
  { family: 4, raw: { dst: '2001:db8::/32' } },
];

// Multipath entries as `ip -j route show` prints them on Linux 6.18 / iproute2 6.1 (both
// families alike: `nexthops`, no top-level gateway or dev), and single paths.
const A4 = { gateway: '192.0.2.2', dev: 'd0', weight: 1, flags: [] };
const B4 = { gateway: '10.9.0.2', dev: 'd1', weight: 3, flags: ['linkdown'] };
const A6 = { gateway: '2001:db8:1::2', dev: 'd0', weight: 1, flags: [] };
const B6 = { gateway: '2001:db8:2::2', dev: 'd1', weight: 2, flags: ['onlink'] };
const MULTI4 = { dst: '198.51.100.0/24', protocol: '147', metric: 10, flags: [] };
const MULTI6 = { dst: '2001:db8:ff::/48', protocol: '147', metric: 10, flags: [], pref: 'medium' };
const HOPS: HopCase[] = [
  // 0, 1: IPv4 multipath, both orders
  {
    raw: { ...MULTI4, nexthops: [A4, B4] },
    desired: [
      [
        { gateway: '10.9.0.2', dev: 'd1', weight: 3 },
        { gateway: '192.0.2.2', dev: 'd0' },
      ],
      [{ gateway: '10.9.0.2', weight: 3 }, { gateway: '192.0.2.2' }], // no dev: any
      [{ gateway: '192.0.2.2', dev: 'd0' }], // one of two
      [
        { gateway: '192.0.2.2', dev: 'd0' },
        { gateway: '10.9.0.2', dev: 'd1' },
      ], // weight 1 asked, 3 held
      [
        { gateway: '192.0.2.2', dev: 'd1' },
        { gateway: '10.9.0.2', dev: 'd1', weight: 3 },
      ], // another device
    ],
  },
  { raw: { ...MULTI4, nexthops: [B4, A4] } },
  // 2, 3: IPv6 multipath, both orders, one in a long spelling
  {
    raw: { ...MULTI6, nexthops: [A6, B6] },
    desired: [
      [
        { gateway: '2001:db8:2::2', weight: 2 },
        { gateway: '2001:db8:1::2', dev: 'd0' },
      ],
      [{ gateway: '2001:db8:1::2', dev: 'd0' }],
    ],
  },
  { raw: { ...MULTI6, nexthops: [{ ...B6, gateway: '2001:0DB8:2:0::0002' }, A6] } },
  // 4: weight left out (older iproute2): 1
  {
    raw: {
      ...MULTI4,
      nexthops: [
        { gateway: '192.0.2.3', dev: 'd0' },
        { gateway: '192.0.2.2', dev: 'd0', flags: ['onlink'] },
      ],
    },
    desired: [[{ gateway: '192.0.2.2', dev: 'd0' }, { gateway: '192.0.2.3' }]],
  },
  // 5: single path, gateway and dev at the top
  {
    raw: { dst: '203.0.113.0/24', gateway: '192.0.2.2', dev: 'd0', protocol: '147', flags: [] },
    desired: [
      [{ gateway: '192.0.2.2' }],
      [{ gateway: '192.0.2.2', dev: 'd0' }],
      [{ gateway: '192.0.2.2', dev: 'd1' }],
      [
        { gateway: '192.0.2.2', dev: 'd0' },
        { gateway: '192.0.2.3', dev: 'd0' },
      ], // multipath asked, single held
      [{ gateway: null, dev: 'd0' }], // no gateway asked
    ],
  },
  // 6: device only; 7: an empty nexthops list reads as the top level
  {
    raw: { dst: '203.0.113.0/24', dev: 'eth0', flags: [] },
    desired: [[{ gateway: null }], [{ gateway: null, dev: 'eth0' }], [{ gateway: '192.0.2.2' }]],
  },
  { raw: { dst: '203.0.113.0/24', gateway: '192.0.2.9', dev: 'eth0', nexthops: [] } },
  // 8: IPv4-mapped and zoned IPv6 gateways, in the kernel's spelling
  {
    raw: {
      ...MULTI6,
      nexthops: [
        { gateway: '::ffff:c000:0209', dev: 'd0', weight: 1 },
        { gateway: 'fe80::1%d1', dev: 'd1', weight: 1 },
      ],
    },
    desired: [[{ gateway: 'fe80::1' }, { gateway: '::ffff:192.0.2.9' }]],
  },
  // 9: the same gateway on two devices: a member naming its device takes its own path first
  {
    raw: {
      ...MULTI6,
      nexthops: [
        { gateway: 'fe80::1', dev: 'd0', weight: 1 },
        { gateway: 'fe80::1', dev: 'd1', weight: 1 },
      ],
    },
    desired: [
      [{ gateway: 'fe80::1' }, { gateway: 'fe80::1', dev: 'd0' }],
      [{ gateway: 'fe80::1' }, { gateway: 'fe80::1' }],
      [
        { gateway: 'fe80::1', dev: 'd1' },
        { gateway: 'fe80::1', dev: 'd1' },
      ],
    ],
  },
  // 10: zero, negative, boolean and fractional weights are 1; a gateway that is no address
  {
    raw: {
      ...MULTI4,
      nexthops: [
        { gateway: '192.0.2.2', weight: 0 },
        { gateway: '192.0.2.3', weight: true },
        { gateway: 'not-an-address', weight: 1.5 },
        { gateway: '', dev: '', weight: -2 },
        'junk',
      ],
    },
  },
];

describe('one kernel normalisation, Python and TypeScript', { timeout: T }, () => {
  it('when both read the forwarding of multipath and single-path entries, then they agree on every set and comparison', async () => {
    const py = await pythonHops(HOPS);
    const ts = typescriptHops(HOPS);
    expect(py).toHaveLength(HOPS.length);
    for (const [i, c] of HOPS.entries()) {
      expect(ts[i], JSON.stringify(c)).toEqual(py[i]);
    }
  });

  it('when the forwarding is read as a set, then order, spelling and a missing weight do not matter and a desired member without dev matches any', () => {
    const ts = typescriptHops(HOPS) as { set: Nexthop[]; same: boolean[] }[];
    expect(ts[0]!.set).toEqual([
      { gateway: '10.9.0.2', dev: 'd1', weight: 3 },
      { gateway: '192.0.2.2', dev: 'd0', weight: 1 },
    ]);
    expect(ts[1]!.set).toEqual(ts[0]!.set);
    expect(ts[0]!.same).toEqual([true, true, false, false, false]);
    expect(ts[2]!.set).toEqual([
      { gateway: '2001:db8:1::2', dev: 'd0', weight: 1 },
      { gateway: '2001:db8:2::2', dev: 'd1', weight: 2 },
    ]);
    expect(ts[3]!.set).toEqual(ts[2]!.set);
    expect(ts[2]!.same).toEqual([true, false]);
    expect(ts[4]!.set.map((h) => h.weight)).toEqual([1, 1]);
    expect(ts[4]!.same).toEqual([true]);
    expect(ts[5]!.set).toEqual([{ gateway: '192.0.2.2', dev: 'd0', weight: 1 }]);
    expect(ts[5]!.same).toEqual([true, true, false, false, false]);
    expect(ts[6]!.set).toEqual([{ gateway: null, dev: 'eth0', weight: 1 }]);
    expect(ts[6]!.same).toEqual([true, true, false]);
    expect(ts[7]!.set).toEqual([{ gateway: '192.0.2.9', dev: 'eth0', weight: 1 }]);
    expect(ts[8]!.set).toEqual([
      { gateway: '::ffff:192.0.2.9', dev: 'd0', weight: 1 },
      { gateway: 'fe80::1', dev: 'd1', weight: 1 },
    ]);
    expect(ts[8]!.same).toEqual([true]);
    expect(ts[9]!.same).toEqual([true, true, false]);
    expect(ts[10]!.set).toEqual([
      { gateway: null, dev: null, weight: 1 },
      { gateway: '192.0.2.2', dev: null, weight: 1 },
      { gateway: '192.0.2.3', dev: null, weight: 1 },
      { gateway: 'not-an-address', dev: null, weight: 1 },
    ]);
  });

  it('when both normalise the captured ip -j and ip -N -j shapes, then they agree on every entry', async () => {
    const py = await python(CAPTURED);
    const ts = typescript(CAPTURED);
    expect(py).toHaveLength(CAPTURED.length);
    for (const [i, c] of CAPTURED.entries()) {
      expect(ts[i], JSON.stringify(c)).toEqual(py[i]);
    }
  });

  it('when the shapes are normalised, then the kernel spellings collapse to one identity', () => {
    const ts = typescript(CAPTURED);
    expect(ts.slice(0, 4)).toEqual([
      { family: 4, dst: '0.0.0.0/0', table: 254, metric: 0 },
      { family: 4, dst: '0.0.0.0/0', table: 254, metric: 0 },
      { family: 6, dst: '::/0', table: 254, metric: 1024 },
      { family: 6, dst: '::/0', table: 254, metric: 1024 },
    ]);
    expect(ts[4]).toEqual(ts[5]);
    expect(ts[6]).toEqual(ts[7]);
    expect(ts[8]).toEqual(ts[9]);
    expect(ts[8]).toMatchObject({ table: 253 });
    expect(ts[10]).toMatchObject({ table: 4294967295 });
    expect(ts[11]).toEqual({ error: true }); // a name only the host's rt_tables knows
    expect(ts.slice(12, 15).map((a) => 'metric' in a && a.metric)).toEqual([0, 0, 3000000000]);
    expect(ts.slice(15, 19).map((a) => 'metric' in a && a.metric)).toEqual([
      1024, 1024, 1, 4294967295,
    ]);
    expect(ts[19]).toMatchObject({ dst: '2001:db8:f000::1/128' });
    expect(ts[20]).toMatchObject({ dst: '2001:db8:0:1:1:1:1:1/128' });
    expect(ts[21]).toMatchObject({ dst: '::ffff:203.0.113.0/120' });
    expect(ts[22]).toEqual(ts[21]);
    expect(ts[23]).toMatchObject({ dst: '::ffff:203.0.113.5/128' });
    expect(ts[26]).toMatchObject({ dst: '203.0.113.0/24' });
    expect(ts.slice(27)).toEqual([{ error: true }, { error: true }]);
  });

  describe('on a lab host, with routes of every spelling in its kernel', () => {
    const fleet = useLab(1);
    const live: Case[] = [];
    const identities: Record<'named' | 'numeric', string[]> = { named: [], numeric: [] };
    const onLink = (gateway: string, last: number) =>
      gateway.replace(/\d+$/, (n) => String(Number(n) + last)); // another address of the /28

    beforeAll(async () => {
      const ip = (...args: string[]) => nsExec(fleet.lab, 'h1', ['ip', ...args]);
      await ip('route', 'add', '203.0.113.0/25', 'dev', 'eth0', 'table', '100', 'proto', '147');
      await ip('route', 'add', '203.0.113.128/25', 'dev', 'eth0', 'table', 'default');
      await ip('route', 'add', '203.0.113.9', 'dev', 'eth0', 'metric', '3000000000');
      await ip('-6', 'route', 'add', '2001:db8:f000::/48', 'dev', 'eth0', 'metric', '0');
      await ip('-6', 'route', 'add', 'default', 'dev', 'eth0', 'table', '4294967295');
      await ip('-6', 'route', 'add', '::ffff:203.0.113.0/120', 'dev', 'eth0');
      // Multipath, both families: the gateways need only be on the link.
      const [g4, g6] = [fleet.lab.gatewayV4, fleet.lab.gatewayV6];
      // prettier-ignore
      await ip('route', 'add', '203.0.113.64/26', 'proto', '147', 'nexthop', 'via', g4, 'weight', '2',
        'nexthop', 'via', onLink(g4, 9), 'dev', 'eth0');
      // prettier-ignore
      await ip('-6', 'route', 'add', '2001:db8:f004::/48', 'nexthop', 'via', `${g6.slice(0, -1)}a`,
        'dev', 'eth0', 'nexthop', 'via', g6, 'dev', 'eth0', 'weight', '5', 'onlink');
      for (const [style, flags] of [
        ['named', ['-j']],
        ['numeric', ['-N', '-j']],
      ] as const) {
        for (const family of [4, 6] as const) {
          const out = await ip(...flags, `-${family}`, 'route', 'show', 'table', 'all');
          for (const raw of JSON.parse(out) as Case['raw'][]) {
            live.push({ family, raw });
            const n = normaliseKernelRoute(raw, family);
            identities[style].push(`${n.family} ${n.table} ${n.dst} ${n.metric}`);
          }
        }
      }
    }, T);

    it('when both normalise what ip -j and ip -N -j print, then they agree on every entry', async () => {
      expect(live.length).toBeGreaterThan(10);
      expect(typescript(live)).toEqual(await python(live));
    });

    it('when both read the forwarding of what ip -j prints, multipath included, then they agree on every entry', async () => {
      const hops = live.map((c) => ({ raw: c.raw }));
      expect(typescriptHops(hops)).toEqual(await pythonHops(hops));
      const multi = live.filter((c) => Array.isArray(c.raw.nexthops));
      // One each for 203.0.113.64/26 and 2001:db8:f004::/48, read with names and with numbers.
      expect(multi.map((c) => c.raw.dst).sort()).toEqual([
        '2001:db8:f004::/48',
        '2001:db8:f004::/48',
        '203.0.113.64/26',
        '203.0.113.64/26',
      ]);
      for (const c of multi) expect(c.raw).not.toHaveProperty('gateway');
      const [g4, g6] = [fleet.lab.gatewayV4, fleet.lab.gatewayV6];
      expect(nexthopSet(multi.find((c) => c.family === 4)!.raw as RawForwarding)).toEqual(
        [
          { gateway: g4, dev: 'eth0', weight: 2 },
          { gateway: onLink(g4, 9), dev: 'eth0', weight: 1 },
        ].sort((a, b) => (a.gateway < b.gateway ? -1 : 1)),
      );
      expect(nexthopSet(multi.find((c) => c.family === 6)!.raw as RawForwarding)).toEqual([
        { gateway: g6, dev: 'eth0', weight: 5 },
        { gateway: `${g6.slice(0, -1)}a`, dev: 'eth0', weight: 1 },
      ]);
    });

    it('when the same table is read with names and with numbers, then the identities are the same', () => {
      expect(identities.named.sort()).toEqual(identities.numeric.sort());
      expect(identities.named).toEqual(
        expect.arrayContaining([
          '4 254 0.0.0.0/0 0',
          '6 254 ::/0 1024',
          '4 100 203.0.113.0/25 0',
          '4 253 203.0.113.128/25 0',
          '4 254 203.0.113.9/32 3000000000',
          // metric 0 asked, 1024 stored
          '6 254 2001:db8:f000::/48 1024',
          '6 4294967295 ::/0 1024',
          '6 254 ::ffff:203.0.113.0/120 1024',
        ]),
      );
    });
  });
});
