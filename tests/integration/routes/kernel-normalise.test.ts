import path from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import { normaliseKernelRoute, type RawKernelRoute } from '../../../src/routes/kernel-route.ts';
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

describe('one kernel normalisation, Python and TypeScript', { timeout: T }, () => {
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

    beforeAll(async () => {
      const ip = (...args: string[]) => nsExec(fleet.lab, 'h1', ['ip', ...args]);
      await ip('route', 'add', '203.0.113.0/25', 'dev', 'eth0', 'table', '100', 'proto', '147');
      await ip('route', 'add', '203.0.113.128/25', 'dev', 'eth0', 'table', 'default');
      await ip('route', 'add', '203.0.113.9', 'dev', 'eth0', 'metric', '3000000000');
      await ip('-6', 'route', 'add', '2001:db8:f000::/48', 'dev', 'eth0', 'metric', '0');
      await ip('-6', 'route', 'add', 'default', 'dev', 'eth0', 'table', '4294967295');
      await ip('-6', 'route', 'add', '::ffff:203.0.113.0/120', 'dev', 'eth0');
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
