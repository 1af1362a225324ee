import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import { REPO, startTestServer, TOKENS, type TestServer } from '../../helpers/server.ts';

// `routeplane firewall`, spawned as a person would run it, against a real server and a
// one-host lab; what lands on the host is read from nftables inside its namespace.
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

/** The cell under `name` in a table row: from its header's start to the next header's. */
function column(header: string, row: string, name: string): string {
  const starts = [...header.matchAll(/\S+/g)];
  const i = starts.findIndex((m) => m[0] === name);
  return row.slice(starts[i]!.index, starts[i + 1]?.index).trim();
}

describe('the routeplane firewall CLI against a server and a lab of 1 host', { timeout: T }, () => {
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

  describe('rules, one step after the other', () => {
    let id = '';
    let dnatId = '';

    it('when a rule is added, then it exits 0, shows it in sync, and the host has it', async () => {
      expect(await table()).toBe('');
      const r = await cli([
        'firewall',
        'add',
        'h1',
        'input',
        'accept',
        '--protocol',
        'tcp',
        '--dport',
        '8080',
        '--src',
        '10.0.0.0/8,192.0.2.0/24',
        '--src',
        '2001:db8::/32',
        '--comment',
        'from the cli',
        ...WAIT,
      ]);
      expect(r.code, r.stderr).toBe(0);
      id = fieldOf(r.stdout, 'id') ?? '';
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(fieldOf(r.stdout, 'chain')).toBe('input');
      expect(fieldOf(r.stdout, 'family')).toBe('inet');
      expect(fieldOf(r.stdout, 'src')).toBe('10.0.0.0/8,192.0.2.0/24,2001:db8::/32');
      expect(fieldOf(r.stdout, 'dport')).toBe('8080');
      expect(fieldOf(r.stdout, 'priority')).toBe('100');
      expect(fieldOf(r.stdout, 'status')).toBe('active');
      expect(fieldOf(r.stdout, 'sync')).toBe('in_sync');
      expect(fieldOf(r.stdout, 'comment')).toBe('from the cli');
      const nft = await table();
      expect(nft).toContain(`comment "rp:${id}"`);
      expect(nft).toMatch(/dport 8080/);
    });

    it('when the identical rule is added again, then it exits 0 with the existing one', async () => {
      const r = await cli([
        'firewall',
        'add',
        'h1',
        'input',
        'accept',
        '--protocol',
        'tcp',
        '--dport',
        '8080',
        '--src',
        '2001:db8::/32',
        '--src',
        '192.0.2.0/24,10.0.0.0/8',
        ...WAIT,
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(fieldOf(r.stdout, 'id')).toBe(id);
      expect(r.stderr).toBe(`routeplane: rule ${id} already exists; nothing changed`);
    });

    it('when a dnat rule is added with --to address:port and --json, then stdout is the rule', async () => {
      const r = await cli([
        'firewall',
        'add',
        'h1',
        'prerouting',
        'dnat',
        '--family',
        'ip',
        '--protocol',
        'tcp',
        '--dst',
        '169.254.169.254',
        '--dport',
        '80',
        '--to',
        '127.0.0.1:8080',
        '--priority',
        '10',
        '--json',
        ...WAIT,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const rule = JSON.parse(r.stdout);
      expect(rule).toMatchObject({
        chain: 'prerouting',
        family: 'ip',
        action: 'dnat',
        to: { address: '127.0.0.1', port: 8080 },
        priority: 10,
        sync: { state: 'in_sync' },
      });
      dnatId = rule.id;
      expect(await table()).toContain(`comment "rp:${dnatId}"`);
    });

    it('when rules are listed, then the table has aligned columns and both rules in sync', async () => {
      const r = await cli(['firewall', 'list']);
      expect(r.code, r.stderr).toBe(0);
      const [header, ...rows] = r.stdout.split('\n');
      expect(header).toMatch(
        /^ID\s+HOST\s+CHAIN\s+FAMILY\s+PROTOCOL\s+MATCH\s+ACTION\s+PRIORITY\s+STATUS\s+SYNC$/,
      );
      const row = rows.find((l) => l.startsWith(id))!;
      const dnatRow = rows.find((l) => l.startsWith(dnatId))!;
      expect(column(header!, row, 'MATCH')).toBe(
        'src=10.0.0.0/8,192.0.2.0/24,2001:db8::/32 dport=8080',
      );
      expect(column(header!, row, 'ACTION')).toBe('accept');
      expect(column(header!, row, 'STATUS')).toBe('active');
      expect(column(header!, row, 'SYNC')).toBe('in_sync');
      expect(column(header!, dnatRow, 'ACTION')).toBe('dnat to 127.0.0.1:8080');
      expect(column(header!, dnatRow, 'SYNC')).toBe('in_sync');
    });

    it('when listed with filters and --json, then the API page comes back as JSON', async () => {
      const r = await cli(['firewall', 'ls', '--host', 'h1', '--limit', '1', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const page = JSON.parse(r.stdout);
      // In render order: the dnat rule has priority 10, the accept 100.
      expect(page).toMatchObject({ total: 2, limit: 1, offset: 0, items: [{ id: dnatId }] });

      const paused = await cli(['firewall', 'list', '--status', 'paused']);
      expect(paused).toEqual({ code: 0, stdout: '', stderr: 'routeplane: no rules' });
    });

    it('when a rule is shown, then every field is a line', async () => {
      const r = await cli(['firewall', 'show', dnatId]);
      expect(r.code, r.stderr).toBe(0);
      expect(fieldOf(r.stdout, 'to')).toBe('127.0.0.1:8080');
      expect(fieldOf(r.stdout, 'dst')).toBe('169.254.169.254/32');
      expect(fieldOf(r.stdout, 'src')).toBe('-');
      expect(fieldOf(r.stdout, 'created_by')).toBe('operator');
    });

    it('when the rule is paused, then it leaves the host; paused again, it exits 1', async () => {
      const r = await cli(['firewall', 'pause', id, ...WAIT]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(
        `paused rule ${id} (input tcp src=10.0.0.0/8,192.0.2.0/24,2001:db8::/32 dport=8080 ` +
          'accept on h1): paused, in_sync',
      );
      expect(await table()).not.toContain(id);

      const again = await cli(['firewall', 'pause', id]);
      expect(again.code).toBe(1);
      expect(again.stdout).toBe('');
      expect(again.stderr).toMatch(new RegExp(`^routeplane: Rule ${id} is paused`));
    });

    it('when the rule is resumed, then it is back on the host', async () => {
      const r = await cli(['firewall', 'resume', id, ...WAIT]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^resumed rule ${id} \\(.+\\): active, in_sync$`));
      expect(await table()).toContain(`comment "rp:${id}"`);
    });

    it('when the rule is deleted, then it leaves the host and shows as deleted', async () => {
      const r = await cli(['firewall', 'rm', id, ...WAIT]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^deleted rule ${id} \\(.+\\): deleted, in_sync$`));
      expect(await table()).not.toContain(id);

      const shown = await cli(['firewall', 'show', id]);
      expect(shown.code, shown.stderr).toBe(0);
      expect(fieldOf(shown.stdout, 'status')).toBe('deleted');
      expect(fieldOf(shown.stdout, 'removed_reason')).toBe('deleted');
      expect(fieldOf(shown.stdout, 'removed_by')).toBe('operator');
    });

    it("when the rule's events are listed, then they tell its story", async () => {
      const r = await cli(['firewall', 'events', id]);
      expect(r.code, r.stderr).toBe(0);
      const [header, ...rows] = r.stdout.split('\n');
      expect(header).toMatch(/^AT\s+ACTOR\s+ACTION\s+FROM\s+TO\s+DETAIL$/);
      expect(rows.map((l) => column(header!, l, 'ACTION'))).toEqual([
        'create',
        'pause',
        'resume',
        'delete',
      ]);
      expect(rows.map((l) => column(header!, l, 'ACTOR'))).toEqual(Array(4).fill('operator'));

      const json = await cli(['firewall', 'events', id, '--json']);
      expect(JSON.parse(json.stdout).items).toHaveLength(4);
    });

    it('when the host still has a live rule, then release exits 1 with a hint', async () => {
      const r = await cli(['firewall', 'release', 'h1']);
      expect(r.code).toBe(1);
      expect(r.stderr.split('\n')).toEqual([
        expect.stringMatching(/^routeplane: Host 'h1' has 1 live firewall rule/),
        "routeplane: see them with 'routeplane firewall list --host h1'",
      ]);
    });

    it("when the last rule is deleted and the host released, then routeplane's table is gone", async () => {
      const del = await cli(['firewall', 'del', dnatId, '--json', ...WAIT]);
      expect(del.code, del.stderr).toBe(0);
      expect(JSON.parse(del.stdout)).toMatchObject({ id: dnatId, status: 'deleted' });
      // The host is still managed: its table stays, with no rules of its own.
      expect(await table()).toContain('table inet routeplane');

      const r = await cli(['firewall', 'release', 'h1', ...WAIT]);
      expect(r).toEqual({
        code: 0,
        stdout: "released h1: routeplane's table is removed",
        stderr: '',
      });
      expect(await table()).toBe('');
    });

    it('when the rule never existed, then show, rm and events exit 1 naming it', async () => {
      for (const verb of ['show', 'rm', 'events']) {
        const r = await cli(['firewall', verb, ABSENT_ID]);
        expect(r.code, verb).toBe(1);
        expect(r.stdout, verb).toBe('');
        expect(r.stderr, verb).toMatch(new RegExp(`^routeplane: .*${ABSENT_ID}`));
      }
    });
  });

  describe('rejected requests', () => {
    it('when a rule is invalid, then each field and reason is printed as the option typed', async () => {
      const cases: [string[], string][] = [
        [
          ['input', 'accept', '--protocol', 'any', '--dport', '22'],
          "  --dport: ports need protocol tcp or udp (this rule's protocol is any)",
        ],
        [
          ['input', 'drop', '--family', 'ip', '--src', '10.0.0.0/8,2001:db8::/32'],
          "  --src: '2001:db8::/32' is IPv6 in an ip (IPv4) rule",
        ],
        [['prerouting', 'dnat', '--protocol', 'tcp'], '  --to: dnat needs a target address'],
        [
          ['input', 'dnat', '--to', '192.0.2.1'],
          '  <action>: dnat belongs in prerouting or output',
        ],
        [['input', 'accept', '--create-at', 'soon'], '  --create-at: '],
      ];
      for (const [args, line] of cases) {
        const r = await cli(['firewall', 'add', 'h1', ...args]);
        expect(r.code, args.join(' ')).toBe(1);
        const lines = r.stderr.split('\n');
        expect(lines[0], r.stderr).toBe('routeplane: the API rejected the request:');
        expect(
          lines.some((l) => l.startsWith(line)),
          r.stderr,
        ).toBe(true);
      }
      const listed = await cli(['firewall', 'list', '--json']);
      expect(JSON.parse(listed.stdout).total).toBe(0);
    });

    it('when the host is unknown, then it exits 1 naming <host>', async () => {
      const r = await cli(['firewall', 'add', 'h9', 'input', 'accept']);
      expect(r).toEqual({
        code: 1,
        stdout: '',
        stderr:
          "routeplane: the API rejected the request:\n  <host>: 'h9' is not a host or group of the inventory",
      });
    });

    it('when --to is not an address[:port], then commander refuses it before any request', async () => {
      const r = await cli(['firewall', 'add', 'h1', 'prerouting', 'dnat', '--to', '[2001:db8::1']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /option '--to <address\[:port\]>' argument '\[2001:db8::1' is invalid/,
      );
    });

    it('when the token is only a viewer, then add exits 1 with the role needed', async () => {
      const r = await cli(
        ['firewall', 'add', 'h1', 'input', 'accept', '--protocol', 'tcp', '--dport', '8081'],
        { ROUTEPLANE_TOKEN: TOKENS.viewer },
      );
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^routeplane: This operation needs the operator role/);
      const listed = await cli(['firewall', 'list', '--json'], { ROUTEPLANE_TOKEN: TOKENS.viewer });
      expect(listed.code, listed.stderr).toBe(0);
      expect(JSON.parse(listed.stdout).total).toBe(0);
    });
  });
});
