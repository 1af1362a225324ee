import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labSsh } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import { tcpListeners, tcpReachable } from '../../helpers/tcp-probe.ts';
import { localAnsibleEnv } from '../../helpers/local-ansible.ts';
import { REPO } from '../../helpers/server.ts';

// routeplane_firewall and the default template (playbooks/templates/firewall.nft.j2), run by
// Ansible itself inside lab host h1's namespace over a local connection, the template rendered
// on the "controller" side of that run as apply.yml will. Real packets: h2 connects to
// listeners in h1; the test process (the controller's address) is management.
const T = 120_000;
const TEMPLATE = path.join(REPO, 'playbooks/templates/firewall.nft.j2');
const RULE_8080 = '0a0a0a0a-0000-4000-8000-000000008080';
const RULE_BAD = '0b0b0b0b-0000-4000-8000-00000000bad0';

interface FirewallResult {
  failed?: boolean;
  msg?: string;
  changed: boolean;
  present?: boolean;
  drifted?: boolean;
  rule?: string | null;
  hash?: string;
}

interface Rule {
  id: string;
  chain: string;
  protocol: string;
  src4: string[];
  src6: string[];
  dst4: string[];
  dst6: string[];
  sport: string[];
  dport: string[];
  src_set: string | null;
  dst_set: string | null;
  sport_set: string | null;
  dport_set: string | null;
  iif: string | null;
  oif: string | null;
  action: string;
}

const rule = (id: string, over: Partial<Rule>): Rule => ({
  id,
  chain: 'input',
  protocol: 'tcp',
  src4: [],
  src6: [],
  dst4: [],
  dst6: [],
  sport: [],
  dport: [],
  src_set: null,
  dst_set: null,
  sport_set: null,
  dport_set: null,
  iif: null,
  oif: null,
  action: 'accept',
  ...over,
});

describe('the firewall module and its default template, on lab hosts', { timeout: T }, () => {
  const fleet = useLab(2);
  let tmp: string;
  let stopListeners: (() => Promise<void>) | undefined;
  const h1 = () => fleet.lab.hosts[0]!;
  const h2 = () => fleet.lab.hosts[1]!;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'routeplane-firewall-'));
    // Two TCP listeners in h1: one to open, one left closed.
    stopListeners = await tcpListeners(h1(), [8080, 8081]);
  }, T);

  afterAll(async () => {
    await stopListeners?.();
    await rm(tmp, { recursive: true, force: true });
  });

  const reachable = (port: number) => tcpReachable(h2(), h1(), port);

  /** One run of the module in h1's namespace: `table` rendered from the template or given. */
  async function run(opts: {
    rules?: Rule[];
    table?: string;
    state?: 'present' | 'absent';
    /** More host variables, as the inventory would give them. */
    extra?: Record<string, unknown>;
  }): Promise<FirewallResult> {
    const vars = {
      tpl: TEMPLATE,
      // As the reconciler writes a host's desired file: its rules and its management address.
      routeplane_firewall: { rules: opts.rules ?? [] },
      routeplane_management_address: fleet.lab.gatewayV4,
      given: opts.table ?? null,
      wanted: opts.state ?? 'present',
      ...opts.extra,
    };
    const varsFile = path.join(tmp, 'vars.json');
    await writeFile(varsFile, JSON.stringify(vars));
    const playbook = path.join(tmp, 'firewall.yml');
    await writeFile(
      playbook,
      [
        '- hosts: localhost',
        '  gather_facts: false',
        '  tasks:',
        '    - routeplane_firewall:',
        '        table: "{{ given if given else lookup(\'template\', tpl) }}"',
        '        state: "{{ wanted }}"',
        '        fence: { name: h1, epoch: 1 }',
        '',
      ].join('\n'),
    );
    const env = localAnsibleEnv(tmp);
    const { stdout } = await execa(
      'ip',
      [
        'netns',
        'exec',
        h1().netns,
        'ansible-playbook',
        '-i',
        'localhost,',
        '-c',
        'local',
        '-e',
        `@${varsFile}`,
        playbook,
      ],
      { env, extendEnv: false, reject: false },
    );
    const out = JSON.parse(stdout) as {
      plays: { tasks: { hosts: Record<string, FirewallResult> }[] }[];
    };
    return out.plays[0]!.tasks[0]!.hosts.localhost!;
  }

  const nftJson = async (...args: string[]) =>
    JSON.parse((await execa('ip', ['netns', 'exec', h1().netns, 'nft', '-j', ...args])).stdout) as {
      nftables: Record<string, { comment?: string; name?: string; family?: string }>[];
    };
  const tables = async () =>
    (await nftJson('list', 'tables')).nftables
      .filter((i) => i.table)
      .map((i) => `${i.table!.family} ${i.table!.name}`)
      .sort();
  const comments = async () =>
    (await nftJson('list', 'table', 'inet', 'routeplane')).nftables
      .filter((i) => i.rule)
      .map((i) => i.rule!.comment)
      .filter(Boolean);
  const nft = (script: string) =>
    execa('ip', ['netns', 'exec', h1().netns, 'nft', '-f', '-'], { input: script });

  it('when the host is not managed, then both of its listeners are reachable from h2', async () => {
    expect(await tables()).not.toContain('inet routeplane');
    expect(await reachable(8080)).toBe(true);
    expect(await reachable(8081)).toBe(true);
  });

  it('when a table with one rule opening tcp/8080 is applied, then only that port and management stay open', async () => {
    await nft(
      'table inet other {\n  chain keep {\n    type filter hook input priority 10; policy accept;\n  }\n}\n',
    );
    const res = await run({ rules: [rule(RULE_8080, { dport: ['8080'] })] });
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.changed).toBe(true);
    expect(await comments()).toEqual([`rp:${RULE_8080}`]);
    expect(await reachable(8080)).toBe(true);
    expect(await reachable(8081)).toBe(false);
    // Management: the controller's address still reaches sshd, under an input policy of drop.
    expect(await labSsh(fleet.lab, 'h1', ['echo', 'still here'])).toBe('still here');
    // Another table survives the replacement.
    expect(await tables()).toEqual(['inet other', 'inet routeplane']);
  });

  it('when the same table is applied again, then nothing changes', async () => {
    const res = await run({ rules: [rule(RULE_8080, { dport: ['8080'] })] });
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.changed).toBe(false);
  });

  it('when someone edits routeplane’s table by hand, then the next apply reverts the edit', async () => {
    await nft('add rule inet routeplane input tcp dport 8081 accept');
    expect(await reachable(8081)).toBe(true);
    const res = await run({ rules: [rule(RULE_8080, { dport: ['8080'] })] });
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.changed).toBe(true);
    expect(res.drifted).toBe(true);
    expect(await reachable(8081)).toBe(false);
    expect(await comments()).toEqual([`rp:${RULE_8080}`]);
  });

  it('when nft refuses a rule, then the task fails naming that rule and nft’s message, and the table is exactly as before', async () => {
    const before = await nftJson('list', 'table', 'inet', 'routeplane');
    const table =
      'table inet routeplane {\n' +
      '    chain input {\n' +
      '        type filter hook input priority filter; policy drop;\n' +
      `        tcp dport 70000 accept comment "rp:${RULE_BAD}"\n` +
      '    }\n' +
      '}\n';
    const res = await run({ table });
    expect(res.failed).toBe(true);
    expect(res.rule).toBe(RULE_BAD);
    expect(res.msg).toMatch(/nft refused the table: .*range/i);
    expect(await nftJson('list', 'table', 'inet', 'routeplane')).toEqual(before);
    expect(await reachable(8080)).toBe(true);
  });

  it('when the table text names another table, then the module refuses it and touches nothing', async () => {
    const res = await run({ table: 'table inet other { }\n' });
    expect(res.failed).toBe(true);
    expect(res.msg).toMatch(/only inet routeplane may be defined/);
    expect(await tables()).toEqual(['inet other', 'inet routeplane']);
  });

  it('when the inventory maps a zone to interfaces and overrides a chain policy, then the rule matches the zone’s interfaces and the chain takes the policy', async () => {
    const res = await run({
      rules: [rule(RULE_8080, { dport: ['8080'], iif: 'lan' })],
      extra: {
        routeplane_zones: { lan: ['eth0', 'eth9'] },
        routeplane_firewall_policy: { input: 'accept' },
      },
    });
    expect(res.failed, res.msg).toBeFalsy();
    const listed = (
      await execa('ip', [
        'netns',
        'exec',
        h1().netns,
        'nft',
        'list',
        'chain',
        'inet',
        'routeplane',
        'input',
      ])
    ).stdout;
    expect(listed).toContain('policy accept;');
    expect(listed).toMatch(/iifname \{ "eth0", "eth9" \} tcp dport 8080 accept comment "rp:/);
    expect(await reachable(8081)).toBe(true);
  });

  it('when the host is released (state absent), then routeplane’s table is gone, the other stays, and every port is open again', async () => {
    const res = await run({ state: 'absent' });
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.changed).toBe(true);
    expect(await tables()).toEqual(['inet other']);
    expect(await reachable(8081)).toBe(true);
    const again = await run({ state: 'absent' });
    expect(again.changed).toBe(false);
  });
});
