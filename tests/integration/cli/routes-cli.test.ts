import { createServer } from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import { REPO, startTestServer, TOKENS, type TestServer } from '../../helpers/server.ts';

// The real `routeplane` command, spawned as a person would run it, against a real server and a
// one-host lab; what lands in the kernel is read inside the host's namespace.
const T = 180_000;
const BIN = path.join(REPO, 'bin/routeplane.js');
// Generous: two busy cores; the CLI must answer after the run, not with a 202.
const WAIT = ['--wait', '120'];
const V4 = '203.0.113.0/24';
const V4_MOVED = '203.0.113.192/26';
const V6 = '2001:db8:f000::/48';
const ABSENT_ID = '00000000-0000-4000-8000-000000000000';

interface CliResult {
  code: number | undefined;
  stdout: string;
  stderr: string;
}

interface KernelRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  metric?: number;
  protocol?: string;
}

const fieldOf = (text: string, key: string) => new RegExp(`^${key}:\\s+(.*)$`, 'm').exec(text)?.[1];

/** A port on loopback where nothing listens. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('the routeplane CLI against a server and a lab of 1 host', { timeout: T }, () => {
  const fleet = useLab(1);
  let server: TestServer;
  let gateway: string;

  async function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
    const r = await execa('node', [BIN, ...args], {
      cwd: REPO,
      reject: false,
      env: { ROUTEPLANE_API: server.url, ROUTEPLANE_TOKEN: TOKENS.operator, ...env },
    });
    return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  }

  async function kernel(dst: string, ...where: string[]): Promise<KernelRoute[]> {
    const family = dst.includes(':') ? '-6' : '-4';
    const out = await nsExec(fleet.lab, 'h1', ['ip', '-j', family, 'route', 'show', dst, ...where]);
    return out.trim() ? (JSON.parse(out) as KernelRoute[]) : [];
  }

  beforeAll(async () => {
    server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath });
    gateway = fleet.lab.gatewayV4;
  }, T);

  afterAll(async () => {
    await server?.close();
  }, T);

  describe('routes, one step after the other', () => {
    let id = '';
    let v6Id = '';

    it('when a route is added, then it exits 0, shows it in sync, and the kernel has it', async () => {
      const r = await cli([
        'routes',
        'add',
        'h1',
        V4,
        '--via',
        gateway,
        '--comment',
        'from the cli',
        ...WAIT,
      ]);
      expect(r.code, r.stderr).toBe(0);
      id = fieldOf(r.stdout, 'id') ?? '';
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(fieldOf(r.stdout, 'status')).toBe('active');
      expect(fieldOf(r.stdout, 'sync')).toBe('in_sync');
      expect(fieldOf(r.stdout, 'comment')).toBe('from the cli');
      expect(await kernel(V4)).toEqual([
        expect.objectContaining({ dst: V4, gateway, dev: 'eth0', protocol: '147' }),
      ]);
    });

    it('when the identical route is added again, then it exits 0 with the existing one', async () => {
      const r = await cli(['routes', 'add', 'h1', V4, '--via', gateway, ...WAIT]);
      expect(r.code, r.stderr).toBe(0);
      expect(fieldOf(r.stdout, 'id')).toBe(id);
      expect(r.stderr).toBe(`routeplane: route ${id} already exists; nothing changed`);
      expect(await kernel(V4)).toHaveLength(1);
    });

    it('when added with --json, then stdout is the route as JSON and nothing else', async () => {
      const r = await cli(['routes', 'add', 'h1', V4, '--via', gateway, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ id, host: 'h1', to: V4, via: gateway });
    });

    it('when an IPv6 device-only route goes to table 100, then the kernel has it there', async () => {
      const r = await cli([
        'routes',
        'add',
        'h1',
        V6,
        '--dev',
        'eth0',
        '--table',
        '100',
        '--metric',
        '7',
        '--delete-at',
        '2099-01-01T00:00:00Z',
        ...WAIT,
      ]);
      expect(r.code, r.stderr).toBe(0);
      v6Id = fieldOf(r.stdout, 'id') ?? '';
      expect(fieldOf(r.stdout, 'table')).toBe('100');
      expect(fieldOf(r.stdout, 'delete_at')).toBe('2099-01-01T00:00:00Z');
      expect(await kernel(V6, 'table', '100')).toEqual([
        expect.objectContaining({ dst: V6, dev: 'eth0', metric: 7 }),
      ]);
    });

    it('when routes are listed, then the table has aligned columns and both routes', async () => {
      const r = await cli(['routes', 'list']);
      expect(r.code, r.stderr).toBe(0);
      const [header, ...rows] = r.stdout.split('\n');
      expect(header).toMatch(/^ID\s+HOST\s+TO\s+VIA\s+DEV\s+METRIC\s+TABLE\s+STATUS\s+SYNC/);
      const v4Row = rows.find((l) => l.startsWith(id))!;
      const v6Row = rows.find((l) => l.startsWith(v6Id))!;
      for (const column of ['TO', 'STATUS', 'SYNC']) {
        const at = header!.indexOf(column);
        expect(v4Row.slice(at).split(/\s+/)[0]).toBe(
          { TO: V4, STATUS: 'active', SYNC: 'in_sync' }[column],
        );
        expect(v6Row.slice(at).split(/\s+/)[0]).toBe(
          { TO: V6, STATUS: 'active', SYNC: 'in_sync' }[column],
        );
      }
    });

    it('when listed with filters and --json, then the API page comes back as JSON', async () => {
      const r = await cli([
        'routes',
        'list',
        '--host',
        'h1',
        '--status',
        'active',
        '--sync',
        'in_sync',
        '--within',
        '203.0.113.0/24',
        '--json',
      ]);
      expect(r.code, r.stderr).toBe(0);
      const page = JSON.parse(r.stdout);
      expect(page.items.map((x: { id: string }) => x.id)).toEqual([id]);
      expect(page).toMatchObject({ total: 1, offset: 0 });
    });

    it('when no route matches, then stdout is empty and stderr says so', async () => {
      const r = await cli(['routes', 'list', '--status', 'paused']);
      expect(r).toEqual({ code: 0, stdout: '', stderr: 'routeplane: no routes' });
    });

    it('when the route is paused, then it leaves the kernel', async () => {
      const r = await cli(['routes', 'pause', id, ...WAIT]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`paused route ${id} (${V4} on h1): paused, in_sync`);
      expect(await kernel(V4)).toEqual([]);
    });

    it("when a paused route is paused again, then it exits 1 with the server's detail", async () => {
      const r = await cli(['routes', 'pause', id]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`routeplane: Route ${id} is paused; only active routes can be paused`);
    });

    it('when the route is resumed, then it is back in the kernel', async () => {
      const r = await cli(['routes', 'resume', id, ...WAIT]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`resumed route ${id} (${V4} on h1): active, in_sync`);
      expect(await kernel(V4)).toEqual([expect.objectContaining({ dst: V4, gateway })]);
    });

    it('when an active route is resumed, then it exits 1 with the conflict', async () => {
      const r = await cli(['routes', 'resume', id]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^routeplane: Route \S+ is active; only paused routes/);
    });

    it('when the route is deleted, then it leaves the kernel and shows as deleted', async () => {
      const del = await cli(['routes', 'del', id, ...WAIT]);
      expect(del.code, del.stderr).toBe(0);
      expect(del.stdout).toBe(`deleted route ${id} (${V4} on h1): deleted, in_sync`);
      expect(await kernel(V4)).toEqual([]);

      const shown = await cli(['routes', 'show', id]);
      expect(shown.code, shown.stderr).toBe(0);
      expect(fieldOf(shown.stdout, 'removed_reason')).toBe('deleted');
      expect(fieldOf(shown.stdout, 'removed_by')).toBe('operator');

      const history = await cli(['routes', 'list', '--status', 'deleted']);
      expect(history.stdout.split('\n')[0]).toMatch(/REMOVED_AT\s+REMOVED_BY$/);
      expect(history.stdout).toContain(id);
    });

    it('when a deleted route is deleted again, then it exits 1 saying so', async () => {
      const r = await cli(['routes', 'del', id]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(new RegExp(`^routeplane: Route ${id} was deleted at .+`));
    });

    it('when the route never existed, then show and del exit 1 naming it', async () => {
      for (const verb of ['show', 'del']) {
        const r = await cli(['routes', verb, ABSENT_ID]);
        expect(r, verb).toEqual({
          code: 1,
          stdout: '',
          stderr: `routeplane: No route ${ABSENT_ID}`,
        });
      }
    });

    it('when the IPv6 route is deleted with --json, then stdout is the deleted route', async () => {
      const r = await cli(['routes', 'del', v6Id, '--json', ...WAIT]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ id: v6Id, status: 'deleted' });
      expect(await kernel(V6, 'table', '100')).toEqual([]);
    });
  });

  describe('moving a route', () => {
    let id = '';

    beforeAll(async () => {
      const r = await cli(['routes', 'add', 'h1', V4_MOVED, '--via', gateway, ...WAIT]);
      expect(r.code, r.stderr).toBe(0);
      id = fieldOf(r.stdout, 'id') ?? '';
    }, T);

    it('when the same destination is added with another device, then it exits 1 with a hint', async () => {
      const r = await cli(['routes', 'add', 'h1', V4_MOVED, '--dev', 'eth0']);
      expect(r.code).toBe(1);
      expect(r.stderr.split('\n')).toEqual([
        expect.stringMatching(new RegExp(`^routeplane: h1 already has route ${id} to ${V4_MOVED}`)),
        'routeplane: add --replace to move it to the new gateway or device',
      ]);
      expect(await kernel(V4_MOVED)).toEqual([expect.objectContaining({ gateway })]);
    });

    it('when added with --replace, then the same route moves to the device in the kernel', async () => {
      const r = await cli(['routes', 'add', 'h1', V4_MOVED, '--dev', 'eth0', '--replace', ...WAIT]);
      expect(r.code, r.stderr).toBe(0);
      expect(fieldOf(r.stdout, 'id')).toBe(id);
      const [route] = await kernel(V4_MOVED);
      expect(route).toMatchObject({ dst: V4_MOVED, dev: 'eth0' });
      expect(route?.gateway).toBeUndefined();
    });
  });

  describe('rejected requests', () => {
    it('when a field is invalid, then each field and reason is printed as the option typed', async () => {
      const cases: [string[], string][] = [
        [['h1', '203.0.113.0/25'], '  --via: at least one of via or dev is required'],
        [['h1', '203.0.113.5/24', '--via', '198.51.100.1'], '  <to>: '],
        [['h9', '203.0.113.0/25', '--via', '198.51.100.1'], "  <host>: 'h9' is not a host"],
        [['h1', '203.0.113.0/25', '--dev', 'eth0', '--create-at', 'soon'], '  --create-at: '],
      ];
      for (const [args, line] of cases) {
        const r = await cli(['routes', 'add', ...args]);
        expect(r.code, args.join(' ')).toBe(1);
        const lines = r.stderr.split('\n');
        expect(lines[0]).toBe('routeplane: the API rejected the request:');
        expect(
          lines.some((l) => l.startsWith(line)),
          r.stderr,
        ).toBe(true);
      }
      expect(await kernel('203.0.113.0/25')).toEqual([]);
    });

    it('when the token is only a viewer, then a write exits 1 with the role needed', async () => {
      const r = await cli(['routes', 'add', 'h1', V4, '--via', gateway], {
        ROUTEPLANE_TOKEN: TOKENS.viewer,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^routeplane: This operation needs the operator role/);
    });

    it('when no token is given, then it exits 1 and says how to give one', async () => {
      const r = await cli(['routes', 'list'], { ROUTEPLANE_TOKEN: '' });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^routeplane: .+ \(set --token or ROUTEPLANE_TOKEN\)$/);
    });

    it('when --api and --token are given, then they win over the environment', async () => {
      const r = await cli(['routes', 'list', '--api', server.url, '--token', TOKENS.viewer], {
        ROUTEPLANE_API: 'http://127.0.0.1:1',
        ROUTEPLANE_TOKEN: 'wrong',
      });
      expect(r.code, r.stderr).toBe(0);
    });

    it('when nothing listens at the API URL, then it exits 1 naming the URL', async () => {
      const url = `http://127.0.0.1:${await closedPort()}`;
      const r = await cli(['routes', 'list'], { ROUTEPLANE_API: url });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        `routeplane: cannot reach the routeplane API at ${url}: connection refused (is the server running? set --api or ROUTEPLANE_API)`,
      );
    });
  });

  describe('candidate gateways', () => {
    const TO = '203.0.113.64/27';
    /** A second address on h1's link: on-link for the kernel, though nobody answers it. */
    const spare = () => {
      const [net] = fleet.lab.prefixV4.split('/');
      const parts = net!.split('.').map(Number);
      return [...parts.slice(0, 3), parts[3]! + 13].join('.');
    };

    it('when added with two --via, --check and --preempt, then it shows each candidate with its health and the one in use', async () => {
      const r = await cli([
        'routes',
        'add',
        'h1',
        TO,
        '--via',
        gateway,
        '--via',
        spare(),
        '--check',
        'icmp',
        '--check',
        'tcp:22',
        '--interval',
        '1',
        '--preempt',
        '--hold-down',
        '30',
        ...WAIT,
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(fieldOf(r.stdout, 'active_via')).toBe(gateway);
      expect(fieldOf(r.stdout, 'candidates')).toMatch(
        new RegExp(`^${gateway.replace(/\./g, '\\.')} unknown since \\S+ \\(in use\\)$`),
      );
      expect(r.stdout).toContain(`${spare()} unknown since`);
      expect(fieldOf(r.stdout, 'checks')).toBe(
        'icmp every 1s, timeout 1s, rise 2, fall 2; tcp:22 every 1s, timeout 1s, rise 2, fall 2',
      );
      expect(fieldOf(r.stdout, 'preempt')).toBe('yes');
      expect(fieldOf(r.stdout, 'hold_down_s')).toBe('30');
      expect(await kernel(TO)).toEqual([expect.objectContaining({ dst: TO, gateway })]);
      const id = fieldOf(r.stdout, 'id')!;
      const list = await cli(['routes', 'list', '--contains', '203.0.113.65']);
      expect(list.stdout).toMatch(
        new RegExp(`^${id}\\s+h1\\s+\\S+\\s+${gateway.replace(/\./g, '\\.')} \\(of 2\\)`, 'm'),
      );
      expect((await cli(['routes', 'del', id, ...WAIT])).code).toBe(0);
    });

    it('when --ecmp is given, then the kernel gets one route over both gateways', async () => {
      const r = await cli([
        'routes',
        'add',
        'h1',
        TO,
        '--via',
        gateway,
        '--via',
        spare(),
        '--ecmp',
        '--json',
        ...WAIT,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const route = JSON.parse(r.stdout) as { id: string; mode: string; active_via: string[] };
      expect(route).toMatchObject({ mode: 'ecmp', active_via: [gateway, spare()] });
      const [k] = (await kernel(TO)) as (KernelRoute & { nexthops?: { gateway: string }[] })[];
      expect(k?.nexthops?.map((n) => n.gateway).sort()).toEqual([gateway, spare()].sort());
      expect((await cli(['routes', 'del', route.id, ...WAIT])).code).toBe(0);
    });

    it('when --check is neither icmp nor tcp:PORT, then it exits 1 before asking the server', async () => {
      const r = await cli([
        'routes',
        'add',
        'h1',
        TO,
        '--via',
        gateway,
        '--via',
        spare(),
        '--check',
        'http',
      ]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/expected icmp or tcp:PORT/);
    });
  });

  describe('hosts and runs', () => {
    it('when hosts are listed, then h1 shows with its address', async () => {
      const r = await cli(['hosts', 'list'], { ROUTEPLANE_TOKEN: TOKENS.viewer });
      expect(r.code, r.stderr).toBe(0);
      const [header, row] = r.stdout.split('\n');
      expect(header).toMatch(/^NAME\s+GROUPS\s+ADDRESS\s+REACHABLE/);
      expect(row).toMatch(
        new RegExp(`^h1\\s+\\S+\\s+${fleet.lab.hosts[0]!.ipv4.replace(/\./g, '\\.')}\\s+yes`),
      );
    });

    it("when a host is shown with --refresh, then its kernel routes include routeplane's", async () => {
      const r = await cli(['hosts', 'show', 'h1', '--refresh']);
      expect(r.code, r.stderr).toBe(0);
      expect(fieldOf(r.stdout, 'name')).toBe('h1');
      expect(r.stdout).toMatch(/^eth0\s+UP\s+/m);
      expect(r.stdout).toMatch(
        new RegExp(`^${V4_MOVED.replace(/\./g, '\\.')}\\s+-\\s+eth0\\s+147\\s`, 'm'),
      );
    });

    it('when an unknown host is shown, then it exits 1 with the API detail', async () => {
      const r = await cli(['hosts', 'show', 'h9']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^routeplane: .*h9/);
    });

    it('when apply runs are listed and one is shown, then h1 succeeded in it', async () => {
      const list = await cli(['runs', 'list', '--kind', 'apply', '--json']);
      expect(list.code, list.stderr).toBe(0);
      const runs = JSON.parse(list.stdout).items as { id: string; kind: string }[];
      expect(runs.length).toBeGreaterThan(0);
      expect(runs.every((x) => x.kind === 'apply')).toBe(true);

      const table = await cli(['runs', 'list', '--kind', 'apply', '--limit', '1']);
      expect(table.stdout.split('\n')[1]).toMatch(new RegExp(`^${runs[0]!.id}\\s+apply\\s+`));

      const shown = await cli(['runs', 'show', runs[0]!.id]);
      expect(shown.code, shown.stderr).toBe(0);
      expect(fieldOf(shown.stdout, 'kind')).toBe('apply');
      expect(shown.stdout).toMatch(/^h1\s+(ok|changed)\s+/m);
    });
  });
});
