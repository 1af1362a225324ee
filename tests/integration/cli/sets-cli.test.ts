import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import { REPO, startTestServer, TOKENS, type TestServer } from '../../helpers/server.ts';

// `routeplane sets` and `routeplane routes add --allow`, spawned as a person would run them,
// against a real server and a one-host lab; what lands on the host is read from nftables.
const T = 180_000;
const BIN = path.join(REPO, 'bin/routeplane.js');
// Generous: two busy cores; the CLI must answer after the run, not with a 202.
const WAIT = ['--wait', '120'];
const ABSENT_ID = '00000000-0000-4000-8000-000000000000';

interface CliResult {
  code: number | undefined;
  stdout: string;
  stderr: string;
}

const fieldOf = (text: string, key: string) => new RegExp(`^${key}:\\s+(.*)$`, 'm').exec(text)?.[1];

/** The lines under the ELEMENT header of `sets show`. */
function elementsOf(text: string): string[] {
  const lines = text.split('\n');
  const at = lines.indexOf('ELEMENT');
  if (at < 0) return [];
  const rest = lines.slice(at + 1);
  const end = rest.findIndex((l) => l === '');
  return end < 0 ? rest : rest.slice(0, end);
}

/** The cell under `name` in a table row: from its header's start to the next header's. */
function column(header: string, row: string, name: string): string {
  const starts = [...header.matchAll(/\S+/g)];
  const i = starts.findIndex((m) => m[0] === name);
  return row.slice(starts[i]!.index, starts[i + 1]?.index).trim();
}

describe('the routeplane sets CLI against a server and a lab of 1 host', { timeout: T }, () => {
  const fleet = useLab(1);
  let server: TestServer;

  async function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
    const r = await execa('node', [BIN, ...args], {
      cwd: REPO,
      reject: false,
      env: { ROUTEPLANE_API: server.url, ROUTEPLANE_TOKEN: TOKENS.operator, ...env },
    });
    return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  }

  /** routeplane's table on h1, as nft prints it; '' when there is none. */
  async function table(): Promise<string> {
    const tables = await nsExec(fleet.lab, 'h1', ['nft', 'list', 'tables']);
    if (!tables.includes('inet routeplane')) return '';
    return nsExec(fleet.lab, 'h1', ['nft', 'list', 'table', 'inet', 'routeplane']);
  }

  beforeAll(async () => {
    // Confirms are tested in tests/integration/firewall; here they would only cost time.
    server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath, FIREWALL_CONFIRM_S: '0' });
  }, T);

  afterAll(async () => {
    await server?.close();
  }, T);

  describe('a blocklist, one step after the other', () => {
    let id = '';
    let ruleId = '';

    it('when a set is created with elements, then it exits 0 with them canonical and nothing to apply yet', async () => {
      const r = await cli([
        'sets',
        'create',
        'blocklist',
        '--host',
        'h1',
        '--type',
        'address',
        '--element',
        '192.0.2.66',
        '--element',
        '2001:db8:bad::/48,192.0.2.128/25',
        '--comment',
        'scanners',
        ...WAIT,
      ]);
      expect(r.code, r.stderr).toBe(0);
      id = fieldOf(r.stdout, 'id') ?? '';
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(fieldOf(r.stdout, 'name')).toBe('blocklist');
      expect(fieldOf(r.stdout, 'host')).toBe('h1');
      expect(fieldOf(r.stdout, 'type')).toBe('address');
      expect(fieldOf(r.stdout, 'size')).toBe('3');
      expect(fieldOf(r.stdout, 'comment')).toBe('scanners');
      expect(fieldOf(r.stdout, 'created_by')).toBe('operator');
      expect(elementsOf(r.stdout)).toEqual([
        '192.0.2.128/25',
        '192.0.2.66/32',
        '2001:db8:bad::/48',
      ]);
      expect(r.stdout).not.toMatch(/^HOST\s+STATE/m);
      expect(r.stderr).toBe(
        "routeplane: set blocklist: nothing to apply (routeplane manages the firewall of no host in 'h1' yet)",
      );
    });

    it('when the same name is created again, then it exits 1 with the 409 and where to see it', async () => {
      const r = await cli(['sets', 'create', 'blocklist', '--host', 'h1', '--type', 'port']);
      expect(r).toEqual({
        code: 1,
        stdout: '',
        stderr:
          "routeplane: a set named 'blocklist' already exists for 'h1'\n" +
          "routeplane: see it with 'routeplane sets list --target h1'",
      });
    });

    it('when an element is not a prefix, then it exits 1 naming --element and the value', async () => {
      const r = await cli([
        'sets',
        'create',
        'bad',
        '--host',
        'h1',
        '--type',
        'address',
        '--element',
        '192.0.2.1,192.0.2.1/24',
      ]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      const lines = r.stderr.split('\n');
      expect(lines[0], r.stderr).toBe('routeplane: the API rejected the request:');
      expect(lines[1], r.stderr).toMatch(/^ {2}--element: .*192\.0\.2\.1\/24/);
      expect(lines, r.stderr).toHaveLength(2);
    });

    it('when a drop rule names the set, then h1 is managed and its table holds the elements', async () => {
      const r = await cli([
        'firewall',
        'add',
        'h1',
        'input',
        'drop',
        '--src',
        '@blocklist',
        '--priority',
        '10',
        ...WAIT,
      ]);
      expect(r.code, r.stderr).toBe(0);
      ruleId = fieldOf(r.stdout, 'id') ?? '';
      expect(fieldOf(r.stdout, 'src')).toBe('@blocklist');
      const nft = await table();
      expect(nft).toContain('192.0.2.66');
      expect(nft).toContain('192.0.2.128/25');
    });

    it('when elements are added, then the apply table shows h1 in sync and nft has them', async () => {
      const r = await cli(['sets', 'add', id, '203.0.113.7', '2001:db8:beef::1', ...WAIT]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toBe('');
      const lines = r.stdout.split('\n');
      expect(lines[0]).toBe(`added 2 elements: set blocklist (${id}) of h1 holds 5`);
      const header = lines.find((l) => l.startsWith('HOST'))!;
      expect(header).toMatch(/^HOST\s+STATE\s+ERROR\s+RUN$/);
      const row = lines[lines.indexOf(header) + 1]!;
      expect(column(header, row, 'HOST')).toBe('h1');
      expect(column(header, row, 'STATE')).toBe('in_sync');
      expect(column(header, row, 'ERROR')).toBe('-');
      const nft = await table();
      expect(nft).toContain('203.0.113.7');
      expect(nft).toContain('2001:db8:beef::1');
    });

    it('when the controller’s address is added, then it exits 1 with the 409 and nothing is added', async () => {
      const r = await cli(['sets', 'add', id, fleet.lab.gatewayV4, ...WAIT]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(
        new RegExp(
          `^routeplane: refused: with these elements rule ${ruleId} on h1 would cut management`,
        ),
      );
      const shown = await cli(['sets', 'show', id, '--json']);
      expect(JSON.parse(shown.stdout).elements).not.toContain(`${fleet.lab.gatewayV4}/32`);
    });

    it('when elements are removed (an IPv6 prefix among them), then --json has the set without them', async () => {
      const r = await cli([
        'sets',
        'remove',
        id,
        '2001:db8:bad::/48',
        '203.0.113.7',
        '--json',
        ...WAIT,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const answer = JSON.parse(r.stdout);
      expect(answer).toMatchObject({
        id,
        elements: ['192.0.2.128/25', '192.0.2.66/32', '2001:db8:beef::1/128'],
        apply: { settled: true, hosts: [{ host: 'h1', state: 'in_sync', error: null }] },
      });
      const nft = await table();
      expect(nft).not.toContain('203.0.113.7');
      expect(nft).not.toContain('2001:db8:bad::');
    });

    it('when the set is shown, then its fields and every element are lines', async () => {
      const r = await cli(['sets', 'show', id]);
      expect(r.code, r.stderr).toBe(0);
      expect(fieldOf(r.stdout, 'id')).toBe(id);
      expect(fieldOf(r.stdout, 'size')).toBe('3');
      expect(r.stdout).not.toMatch(/^deleted_at:/m);
      expect(elementsOf(r.stdout)).toEqual([
        '192.0.2.128/25',
        '192.0.2.66/32',
        '2001:db8:beef::1/128',
      ]);
    });

    it('when sets are listed for h1 or its group, then h1 sees it and the group has none', async () => {
      const r = await cli(['sets', 'list', '--host', 'h1']);
      expect(r.code, r.stderr).toBe(0);
      const [header, row, ...rest] = r.stdout.split('\n');
      expect(header).toMatch(/^ID\s+NAME\s+HOST\s+TYPE\s+SIZE\s+ELEMENTS\s+COMMENT$/);
      expect(rest).toEqual([]);
      expect(column(header!, row!, 'ID')).toBe(id);
      expect(column(header!, row!, 'NAME')).toBe('blocklist');
      expect(column(header!, row!, 'SIZE')).toBe('3');
      expect(column(header!, row!, 'ELEMENTS')).toBe(
        '192.0.2.128/25,192.0.2.66/32,2001:db8:beef::1/128',
      );

      expect(await cli(['sets', 'ls', '--target', 'lab'])).toEqual({
        code: 0,
        stdout: '',
        stderr: 'routeplane: no sets',
      });
      const json = await cli(['sets', 'list', '--target', 'h1', '--json']);
      expect(JSON.parse(json.stdout).items.map((s: { id: string }) => s.id)).toEqual([id]);

      const both = await cli(['sets', 'list', '--host', 'h1', '--target', 'lab']);
      expect(both.code).toBe(1);
      expect(both.stderr).toMatch(/cannot be used with option '--target/);
    });

    it('when the set is deleted while the rule names it, then it exits 1 naming the rule', async () => {
      const r = await cli(['sets', 'rm', id]);
      expect(r).toEqual({
        code: 1,
        stdout: '',
        stderr:
          "routeplane: set 'blocklist' is named by 1 live rule(s); delete them first\n" +
          `routeplane: rules naming it: ${ruleId} (delete them with 'routeplane firewall rm ID')`,
      });
    });

    it('when the rule is gone, then rm deletes the set and shows h1 in sync', async () => {
      const del = await cli(['firewall', 'rm', ruleId, ...WAIT]);
      expect(del.code, del.stderr).toBe(0);

      const r = await cli(['sets', 'rm', id, ...WAIT]);
      expect(r.code, r.stderr).toBe(0);
      const [line, , header, row] = r.stdout.split('\n');
      expect(line).toBe(`deleted set blocklist (${id}) of h1`);
      expect(header).toMatch(/^HOST\s+STATE\s+ERROR\s+RUN$/);
      expect(column(header!, row!, 'STATE')).toBe('in_sync');

      const shown = await cli(['sets', 'show', id]);
      expect(shown.code, shown.stderr).toBe(0);
      expect(fieldOf(shown.stdout, 'deleted_by')).toBe('operator');

      const again = await cli(['sets', 'add', id, '192.0.2.1']);
      expect(again).toEqual({ code: 1, stdout: '', stderr: `routeplane: Set ${id} was deleted` });
    });

    it('when the events are listed, then they tell the set’s story', async () => {
      const r = await cli(['sets', 'events', id]);
      expect(r.code, r.stderr).toBe(0);
      const [header, ...rows] = r.stdout.split('\n');
      expect(header).toMatch(/^AT\s+ACTOR\s+ACTION\s+ELEMENTS$/);
      expect(rows.map((l) => column(header!, l, 'ACTION'))).toEqual([
        'create',
        'add',
        'remove',
        'delete',
      ]);
      expect(rows.map((l) => column(header!, l, 'ACTOR'))).toEqual(Array(4).fill('operator'));
      expect(column(header!, rows[2]!, 'ELEMENTS')).toBe('2001:db8:bad::/48,203.0.113.7/32');

      const json = await cli(['sets', 'events', id, '--json']);
      expect(JSON.parse(json.stdout).items).toHaveLength(4);
    });

    it('when the set never existed, then show, rm, add and events exit 1 naming it', async () => {
      for (const args of [['show'], ['rm'], ['add', '192.0.2.1'], ['events']]) {
        const [verb, ...rest] = args;
        const r = await cli(['sets', verb!, ABSENT_ID, ...rest]);
        expect(r.code, verb).toBe(1);
        expect(r.stdout, verb).toBe('');
        expect(r.stderr, verb).toBe(`routeplane: Set ${ABSENT_ID} not found`);
      }
    });

    it('when --type is missing or unknown, then commander refuses it before any request', async () => {
      const missing = await cli(['sets', 'create', 'x', '--host', 'h1']);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/required option '--type <type>' not specified/);
      const unknown = await cli(['sets', 'create', 'x', '--host', 'h1', '--type', 'mac']);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/argument 'mac' is invalid/);
    });
  });

  describe('a route with firewall openings (--allow)', () => {
    let routeId = '';

    it('when a route is added with --allow, then --json has its allow and its openings are rules', async () => {
      const r = await cli([
        'routes',
        'add',
        'h1',
        '203.0.113.0/24',
        '--via',
        fleet.lab.gatewayV4,
        '--allow',
        'tcp:443,8000-8080',
        '--allow',
        'udp:53/from=10.0.0.0/8',
        '--json',
        ...WAIT,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const route = JSON.parse(r.stdout);
      expect(route.allow).toEqual([
        { protocol: 'tcp', dport: ['443', '8000-8080'], src: [] },
        { protocol: 'udp', dport: ['53'], src: ['10.0.0.0/8'] },
      ]);
      expect(route.sync.state).toBe('in_sync');
      routeId = route.id;

      const shown = await cli(['routes', 'show', routeId]);
      expect(fieldOf(shown.stdout, 'allow')).toBe('tcp:443,8000-8080 udp:53/from=10.0.0.0/8');

      const rules = await cli(['firewall', 'list', '--route', routeId, '--json']);
      expect(rules.code, rules.stderr).toBe(0);
      const page = JSON.parse(rules.stdout);
      expect(page.total).toBe(2);
      for (const rule of page.items) {
        expect(rule).toMatchObject({ route_id: routeId, chain: 'forward', action: 'accept' });
      }
      const one = await cli(['firewall', 'show', page.items[0].id]);
      expect(fieldOf(one.stdout, 'route')).toBe(routeId);
    });

    it('when an --allow spec is malformed, then commander refuses it before any request', async () => {
      const r = await cli([
        'routes',
        'add',
        'h1',
        '192.0.2.128/25',
        '--dev',
        'eth0',
        '--allow',
        'tcp:https',
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /option '--allow <PROTOCOL\[:PORTS\]\[\/from=SOURCES\]>' argument 'tcp:https' is invalid\. 'https' is not a port/,
      );
    });

    it('when the server refuses an opening, then the error names --allow and the spec', async () => {
      const r = await cli([
        'routes',
        'add',
        'h1',
        '192.0.2.128/25',
        '--dev',
        'eth0',
        '--allow',
        'icmp:22',
      ]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      const lines = r.stderr.split('\n');
      expect(lines[0], r.stderr).toBe('routeplane: the API rejected the request:');
      expect(lines[1], r.stderr).toMatch(/^ {2}--allow: 'icmp:22': /);
      const listed = await cli(['routes', 'list', '--json']);
      expect(JSON.parse(listed.stdout).items.map((x: { id: string }) => x.id)).toEqual([routeId]);
    });

    it('when --route is not a route id, then firewall list exits 1 naming --route', async () => {
      const r = await cli(['firewall', 'list', '--route', 'nope']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^routeplane: the API rejected the request:\n {2}--route: /);
    });
  });
});

// What a lab does not readily give: a host whose apply failed, a run still going, every host
// failing. A fake API answers them, so that the exit codes and notes can be checked.
describe('the routeplane sets CLI on answers from a fake API', { timeout: T }, () => {
  const SET_ID = '9d2c4e6a-1b3f-4a5d-8e7f-0a1b2c3d4e5f';
  const RUN_ID = '0b5e8c31-f7a2-4e96-a1d4-5c3f9b8e2d70';
  const set = {
    id: SET_ID,
    name: 'blocklist',
    host: 'edge',
    type: 'address',
    elements: ['192.0.2.66/32'],
    comment: null,
    created_by: 'alice',
    created_at: '2026-12-01T09:00:00.000Z',
    updated_at: '2026-12-01T09:05:00.000Z',
    deleted_at: null,
    deleted_by: null,
  };
  const seen: { method: string; url: string }[] = [];
  let fake: Server;
  let api = '';

  beforeAll(async () => {
    fake = createServer((req, res) => {
      seen.push({ method: req.method!, url: req.url! });
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(body));
      };
      const url = new URL(req.url!, 'http://fake');
      if (req.method === 'POST' && url.pathname === `/v1/firewall/sets/${SET_ID}/elements`) {
        return send(200, {
          ...set,
          apply: {
            settled: true,
            hosts: [
              { host: 'h1', state: 'in_sync', error: null, run_id: null },
              { host: 'h2', state: 'failed', error: 'nft: syntax error', run_id: RUN_ID },
            ],
          },
        });
      }
      if (req.method === 'DELETE' && url.pathname === `/v1/firewall/sets/${SET_ID}/elements`) {
        return send(
          202,
          {
            ...set,
            apply: {
              settled: false,
              hosts: [{ host: 'h1', state: 'applying', error: null, run_id: RUN_ID }],
            },
          },
          { location: `/v1/runs/${RUN_ID}` },
        );
      }
      if (req.method === 'POST' && url.pathname === '/v1/firewall/sets') {
        return send(502, {
          type: 'about:blank',
          title: 'Apply failed',
          status: 502,
          detail: "set 'blocklist' was not applied: h1 is unreachable",
          set_id: SET_ID,
          host: 'h1',
          run_id: RUN_ID,
        });
      }
      send(404, { type: 'about:blank', title: 'Not Found', status: 404, detail: 'no such path' });
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    api = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => fake?.close(() => resolve()));
  });

  async function cli(args: string[]): Promise<CliResult> {
    const r = await execa('node', [BIN, ...args, '--api', api], {
      cwd: REPO,
      reject: false,
      env: { ROUTEPLANE_TOKEN: TOKENS.operator },
    });
    return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  }

  it('when one host failed to apply the set, then the table shows it and the exit is 1', async () => {
    const r = await cli(['sets', 'add', SET_ID, '203.0.113.7']);
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n');
    const header = lines.find((l) => l.startsWith('HOST'))!;
    const h2 = lines.find((l) => l.startsWith('h2'))!;
    expect(column(header, h2, 'STATE')).toBe('failed');
    expect(column(header, h2, 'ERROR')).toBe('nft: syntax error');
    expect(r.stderr).toBe('routeplane: set blocklist: apply failed on h2: nft: syntax error');
  });

  it('when the run is still going (202), then it exits 0 saying which run to follow', async () => {
    const r = await cli(['sets', 'remove', SET_ID, '2001:db8::/32', '192.0.2.66', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).apply.settled).toBe(false);
    expect(r.stderr).toBe(
      `routeplane: set ${SET_ID} is recorded; the run applying it (${RUN_ID}) is still going: ` +
        `see 'routeplane runs show ${RUN_ID}'`,
    );
    // Each element is its own `element` parameter, encoded.
    expect(seen.at(-1)).toEqual({
      method: 'DELETE',
      url: `/v1/firewall/sets/${SET_ID}/elements?element=2001%3Adb8%3A%3A%2F32&element=192.0.2.66`,
    });
  });

  it('when every host failed (502), then it exits 1 with the error and the run to read', async () => {
    const r = await cli(['sets', 'create', 'blocklist', '--host', 'edge', '--type', 'address']);
    expect(r).toEqual({
      code: 1,
      stdout: '',
      stderr:
        "routeplane: set 'blocklist' was not applied: h1 is unreachable\n" +
        `routeplane: the change to set ${SET_ID} is recorded; its apply failed on h1: ` +
        `see 'routeplane runs show ${RUN_ID}'`,
    });
  });
});
