import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { dump, load } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sshTo, useLab } from '../../helpers/lab.ts';
import { expectProblem } from '../../helpers/problem.ts';
import { poll } from '../../helpers/routes.ts';
import { useTestServer } from '../../helpers/server.ts';

// Commit confirmed, end to end: rules through the API, applied to lab host h1 by the
// reconciler's apply run over SSH (with the run's SSH master kept, as in production), each
// changed table confirmed by a second module call over a new SSH connection. With the
// template's management guard switched off for h1 (routeplane_management_guard: false, a
// test-only inventory variable), a table with an input policy of drop cuts every new SSH
// connection while the master, an established connection, lives on: the confirm cannot get
// in, the rules report failed, and the host's own sleeper puts the previous table back.
const T = 180_000;
// Long enough for a confirm on a loaded 2-core machine (it lands 1 to 3 s after the apply
// armed the revert), short enough that waiting for a revert stays quick.
const CONFIRM_S = 8;
const TAG = 'routeplane-firewall-revert';
const NOT_CONFIRMED = `the new firewall table was not confirmed over a new SSH connection within ${CONFIRM_S} s; the host reverts to the previous table`;

interface RunResult {
  task: string;
  module: string | null;
  status: string;
  data: Record<string, unknown>;
}

describe('confirmed firewall applies through the API, on a lab host', { timeout: T }, () => {
  const fleet = useLab(1);
  let dir: string | undefined;
  let inventory = '';
  const h1 = () => fleet.lab.hosts[0]!;

  /** The lab's inventory, with h1's management guard as told. */
  function writeInventory(guard: boolean) {
    const doc = load(readFileSync(fleet.lab.inventoryPath, 'utf8')) as {
      lab: { hosts: Record<string, Record<string, unknown>> };
    };
    if (!guard) doc.lab.hosts.h1!.routeplane_management_guard = false;
    writeFileSync(inventory, dump(doc, { lineWidth: -1 }));
  }

  const server = useTestServer(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'routeplane-firewall-confirm-'));
    inventory = path.join(dir, 'hosts.yml');
    writeInventory(true);
    return {
      INVENTORY: inventory,
      FIREWALL_CONFIRM_S: String(CONFIRM_S),
      // Short, so a run that hung on a cut connection would fail the test soon.
      RUN_TIMEOUT_S: '60',
      // No retry of the failed host while the test looks at the revert.
      RECONCILE_RETRY_BASE_S: '600',
      RECONCILE_RETRY_MAX_S: '600',
    };
  }, T);

  /** The module's files for h1: /run/lock/routeplane-h1-<network namespace inode>. */
  let base = '';
  beforeAll(async () => {
    base = `/run/lock/routeplane-h1-${(await stat(`/run/netns/${h1().netns}`)).ino}`;
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** routeplane's table in h1, read in its namespace (never over SSH). */
  const live = async () => {
    const r = await execa(
      'ip',
      ['netns', 'exec', h1().netns, 'nft', 'list', 'table', 'inet', 'routeplane'],
      { reject: false },
    );
    return r.exitCode === 0 ? r.stdout : null;
  };
  const pendingFiles = async () =>
    (await readdir('/run/lock')).filter((f) =>
      f.startsWith(`${path.basename(base)}.firewall.pending-`),
    );
  /** The revert sleepers alive in h1's namespace (a zombie has no command line). */
  async function sleepers(): Promise<number[]> {
    const { stdout } = await execa('ip', ['netns', 'pids', h1().netns]);
    const found: number[] = [];
    for (const pid of stdout.split(/\s+/).filter(Boolean).map(Number)) {
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
      if (argv[3] === TAG) found.push(pid);
    }
    return found;
  }
  const noSleeper = () =>
    poll(
      'no revert sleeper',
      async () => ((await sleepers()).length === 0 ? true : undefined),
      5_000,
      100,
    );
  const newSsh = () => sshTo(fleet.lab, h1().ipv4, ['echo', 'in']);
  async function runResults(runId: string): Promise<RunResult[]> {
    const res = await server.request('GET', `/v1/runs/${runId}`, { token: 'viewer' });
    expect(res.status, res.text).toBe(200);
    return (res.body.results as (RunResult & { host: string })[]).filter((r) => r.host === 'h1');
  }
  const openPort = (port: number) => ({
    host: 'h1',
    chain: 'input',
    protocol: 'tcp',
    dport: [String(port)],
    action: 'accept',
  });

  let tableA = '';

  it('when a rule is created, then its table is applied and confirmed over a new connection: in_sync, no pending token, no sleeper, and the table stays past FIREWALL_CONFIRM_S', async () => {
    const res = await server.request('POST', '/v1/firewall/rules', {
      token: 'operator',
      body: openPort(8080),
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.sync).toMatchObject({ state: 'in_sync', error: null });
    const results = await runResults(res.body.sync.run_id as string);
    const firewall = results.filter((r) => r.module === 'routeplane_firewall');
    expect(firewall.map((r) => [r.task, r.status])).toEqual([
      ['firewall', 'changed'],
      ['firewall confirm', 'ok'],
    ]);
    expect(firewall[0]!.data).toMatchObject({ armed: true, confirm_s: CONFIRM_S });
    expect(firewall[1]!.data).toMatchObject({ confirmed: true, token: firewall[0]!.data.token });
    expect(await pendingFiles()).toEqual([]);
    await noSleeper();
    tableA = (await live())!;
    expect(tableA).toContain(`rp:${res.body.id as string}`);
    await new Promise((r) => setTimeout(r, (CONFIRM_S + 1) * 1000));
    expect(await live()).toBe(tableA);
    expect((await newSsh()).stdout).toBe('in');
  });

  it('when the management guard is off and a change cuts new SSH connections, then the confirm fails, the rule reports it, and the host goes back to the previous table by itself', async () => {
    writeInventory(false);
    const res = await server.request('POST', '/v1/firewall/rules', {
      token: 'operator',
      body: openPort(8081),
    });
    expectProblem(res, 502, 'apply-failed');
    expect(res.body.detail).toContain(NOT_CONFIRMED);
    const rule = await server.request('GET', `/v1/firewall/rules/${res.body.rule_id as string}`, {
      token: 'viewer',
    });
    expect(rule.status, rule.text).toBe(200);
    expect(rule.body.dport).toEqual(['8081']);
    expect(rule.body.sync.state).toBe('failed');
    expect(rule.body.sync.error).toContain(NOT_CONFIRMED);
    // Why the confirm failed comes with it: ssh could not reach the host (named by address).
    expect(rule.body.sync.error).toContain(`(Data could not be sent to remote host "${h1().ipv4}"`);
    const results = await runResults(rule.body.sync.run_id as string);
    const firewall = results.filter((r) => r.module === 'routeplane_firewall');
    expect(firewall.map((r) => [r.task, r.status])).toEqual([
      ['firewall', 'changed'],
      ['firewall confirm', 'unreachable'],
    ]);
    // The revert, seen in the namespace itself: table A again, and SSH gets in again.
    await poll(
      'table A back',
      async () => ((await live()) === tableA ? true : undefined),
      60_000,
      250,
    );
    await poll(
      'a new SSH connection',
      async () => ((await newSsh()).exitCode === 0 ? true : undefined),
      30_000,
      500,
    );
    expect(await pendingFiles()).toEqual([]);
    await noSleeper();
    const reverted = JSON.parse(await readFile(`${base}.firewall.reverted`, 'utf8')) as Record<
      string,
      unknown
    >;
    expect(reverted).toMatchObject({ token: firewall[0]!.data.token, rc: 0, fallback: false });
  });

  it('when the guard is back on and the host is applied again, then the unconfirmed rule is applied too (the revert forgot the recorded state) and confirmed', async () => {
    writeInventory(true);
    const res = await server.request('POST', '/v1/firewall/rules', {
      token: 'operator',
      body: openPort(8082),
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.sync).toMatchObject({ state: 'in_sync', error: null });
    const results = await runResults(res.body.sync.run_id as string);
    const applied = results.find(
      (r) => r.task === 'firewall' && r.module === 'routeplane_firewall',
    )!;
    expect(applied.data.reverted).toMatchObject({ rc: 0 });
    const rules = await server.request('GET', '/v1/firewall/rules?host=h1', { token: 'viewer' });
    expect(
      (rules.body.items as { dport: string[]; sync: { state: string } }[])
        .map((r) => [r.dport[0], r.sync.state])
        .sort(),
    ).toEqual([
      ['8080', 'in_sync'],
      ['8081', 'in_sync'],
      ['8082', 'in_sync'],
    ]);
    const table = (await live())!;
    expect(table).toMatch(/tcp dport 8081 accept/);
    expect(await pendingFiles()).toEqual([]);
    await noSleeper();
  });
});
