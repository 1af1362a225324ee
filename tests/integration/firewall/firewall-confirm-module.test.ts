import { mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import { localAnsibleEnv } from '../../helpers/local-ansible.ts';
import { poll } from '../../helpers/routes.ts';

// routeplane_firewall's commit confirmed, module by module, inside lab host h1's namespace over
// a local connection: an apply with confirm_s arms an on-host revert (a detached sleeper), the
// confirm (state confirm) disarms it, and an unconfirmed apply is undone by the sleeper itself.
// The tables here accept everything (policy accept): only their text is looked at. Each step
// is a whole ansible-playbook process (a second or two on a loaded machine), so an apply meant
// to be confirmed gets CONFIRM_S and one meant to revert gets REVERT_S.
const T = 120_000;
const CONFIRM_S = 15;
// Long enough that the apply run has ended and the test has read the new table before it
// reverts on a loaded machine (2 s was not: the run's own tail took longer there).
const REVERT_S = 5;
const TAG = 'routeplane-firewall-revert';

interface FirewallResult {
  failed?: boolean;
  msg?: string;
  changed: boolean;
  armed?: boolean;
  token?: string;
  pid?: number;
  revert?: string;
  confirmed?: boolean;
  sleeper_ended?: boolean;
  reverted?: { token: string; rc: number; fallback: boolean } | null;
}

/** A small table of routeplane's, told apart by the port it accepts. */
const table = (port: number) =>
  'table inet routeplane {\n' +
  '    chain input {\n' +
  '        type filter hook input priority filter; policy accept;\n' +
  `        tcp dport ${port} accept comment "rp:0c0c0c0c-0000-4000-8000-00000000${port}"\n` +
  '    }\n' +
  '}\n';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the firewall module’s commit confirmed, on a lab host', { timeout: T }, () => {
  const fleet = useLab(1);
  let tmp: string;
  /** The module's files for h1: /run/lock/routeplane-h1-<network namespace inode>. */
  let base: string;
  const h1 = () => fleet.lab.hosts[0]!;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'routeplane-firewall-confirm-'));
    const inode = (await stat(`/run/netns/${h1().netns}`)).ino;
    base = `/run/lock/routeplane-h1-${inode}`;
  }, T);

  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  /** One run of the module in h1's namespace with these arguments (fence h1, epoch 1). */
  async function run(args: Record<string, unknown>): Promise<FirewallResult> {
    const playbook = path.join(tmp, 'confirm.yml');
    // JSON is YAML: the arguments go in as they are.
    const task = { routeplane_firewall: { fence: { name: 'h1', epoch: 1 }, ...args } };
    await writeFile(
      playbook,
      JSON.stringify([{ hosts: 'localhost', gather_facts: false, tasks: [task] }]),
    );
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
        playbook,
      ],
      { env: localAnsibleEnv(tmp), extendEnv: false, reject: false },
    );
    const out = JSON.parse(stdout) as {
      plays: { tasks: { hosts: Record<string, FirewallResult> }[] }[];
    };
    return out.plays[0]!.tasks[0]!.hosts.localhost!;
  }

  const apply = (port: number, confirmS: number) =>
    run({ table: table(port), state: 'present', confirm_s: confirmS });

  /** routeplane's table as nft lists it in h1, or null when there is none. */
  async function live(): Promise<string | null> {
    const r = await execa(
      'ip',
      ['netns', 'exec', h1().netns, 'nft', 'list', 'table', 'inet', 'routeplane'],
      { reject: false },
    );
    return r.exitCode === 0 ? r.stdout : null;
  }
  const port = async () => /tcp dport (\d+) accept/.exec((await live()) ?? '')?.[1] ?? null;

  const pendingFiles = async () =>
    (await readdir('/run/lock')).filter((f) =>
      f.startsWith(`${path.basename(base)}.firewall.pending-`),
    );
  const exists = (p: string) =>
    stat(p).then(
      () => true,
      () => false,
    );
  /** The revert sleepers alive in h1's namespace (a zombie has no command line). */
  async function sleepers(): Promise<number[]> {
    const { stdout } = await execa('ip', ['netns', 'pids', h1().netns]);
    const pids = stdout.split(/\s+/).filter(Boolean).map(Number);
    const alive = await Promise.all(
      pids.map(async (pid) => {
        const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
        return argv[3] === TAG ? pid : null;
      }),
    );
    return alive.filter((p): p is number => p !== null);
  }
  const noSleeper = () =>
    poll(
      'no revert sleeper',
      async () => ((await sleepers()).length === 0 ? true : undefined),
      5_000,
      100,
    );

  it('when a table is applied with confirm_s, then a detached sleeper with nothing but /dev/null is armed, and the confirm ends it and keeps the table', async () => {
    const res = await apply(8001, CONFIRM_S);
    expect(res.failed, res.msg).toBeFalsy();
    expect(res).toMatchObject({ changed: true, armed: true, revert: 'remove' });
    expect(res.token).toMatch(/^[0-9a-f]{32}$/);
    expect(await pendingFiles()).toEqual([`${path.basename(base)}.firewall.pending-${res.token}`]);
    expect(await sleepers()).toEqual([res.pid]);
    // Its own session, and no descriptor of the SSH session (or of anything else) inherited.
    const stat = (await readFile(`/proc/${res.pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    expect(Number(stat[3]), 'session id').toBe(res.pid);
    const fds = await readdir(`/proc/${res.pid}/fd`);
    expect(fds.sort()).toEqual(['0', '1', '2']);
    for (const fd of fds) expect(await readlink(`/proc/${res.pid}/fd/${fd}`)).toBe('/dev/null');

    const confirmed = await run({ state: 'confirm', token: res.token });
    expect(confirmed.failed, confirmed.msg).toBeFalsy();
    expect(confirmed).toMatchObject({ changed: false, confirmed: true, sleeper_ended: true });
    expect(await pendingFiles()).toEqual([]);
    await noSleeper();
    expect(await exists(`${base}.firewall.previous.nft`)).toBe(false);
    expect(await port()).toBe('8001');
    // Confirmed and unchanged: the next apply is a no-op and arms nothing.
    const again = await apply(8001, CONFIRM_S);
    expect(again).toMatchObject({ changed: false });
    expect(again.armed).toBeUndefined();
    expect(await sleepers()).toEqual([]);
  });

  it('when an apply is not confirmed, then the host reverts to the previous table by itself, and the next apply applies again and reports the revert', async () => {
    const before = await live();
    const res = await apply(8002, REVERT_S);
    expect(res).toMatchObject({ changed: true, armed: true, revert: 'restore' });
    expect(await port()).toBe('8002');
    await poll(
      'the revert',
      async () => ((await live()) === before ? true : undefined),
      20_000,
      100,
    );
    expect(await pendingFiles()).toEqual([]);
    await noSleeper();
    // The recorded state is forgotten: the same table is applied again, not taken as settled.
    expect(await exists(`${base}.firewall.json`)).toBe(false);
    const again = await apply(8002, CONFIRM_S);
    expect(again).toMatchObject({ changed: true, armed: true });
    expect(again.reverted).toMatchObject({ token: res.token, rc: 0, fallback: false });
    const confirmed = await run({ state: 'confirm', token: again.token });
    expect(confirmed.confirmed, confirmed.msg).toBe(true);
    expect(await port()).toBe('8002');
  });

  it('when a confirm comes after the revert fired, then it fails saying so', async () => {
    const res = await apply(8003, REVERT_S);
    await poll(
      'the revert',
      async () => ((await port()) === '8002' ? true : undefined),
      20_000,
      100,
    );
    const late = await run({ state: 'confirm', token: res.token });
    expect(late.failed).toBe(true);
    expect(late.msg).toMatch(
      /confirmed too late: its revert had already restored the previous table/,
    );
    const unknown = await run({ state: 'confirm', token: 'f'.repeat(32) });
    expect(unknown.failed).toBe(true);
    expect(unknown.msg).toMatch(/confirmed too late: no revert is pending/);
    const bad = await run({ state: 'confirm', token: '../../etc/passwd' });
    expect(bad.failed).toBe(true);
    expect(bad.msg).toMatch(/not a confirm token/);
  });

  it('when applies follow each other unconfirmed, then only the last one’s sleeper is left, and the revert goes back to the last confirmed table', async () => {
    const confirmedTable = await live();
    expect(await port()).toBe('8002');
    const first = await apply(8004, CONFIRM_S);
    const second = await apply(8005, CONFIRM_S);
    expect(second).toMatchObject({ changed: true, armed: true, revert: 'kept' });
    expect(await pendingFiles()).toEqual([
      `${path.basename(base)}.firewall.pending-${second.token}`,
    ]);
    await poll(
      'only the second sleeper',
      async () => ((await sleepers()).join() === String(second.pid) ? true : undefined),
      5_000,
      100,
    );
    // The same table again while its confirm is pending: not a no-op, armed anew.
    const third = await apply(8005, REVERT_S);
    expect(third).toMatchObject({ changed: true, armed: true, revert: 'kept' });
    await poll(
      'the revert',
      async () => ((await live()) === confirmedTable ? true : undefined),
      20_000,
      100,
    );
    await noSleeper();
    expect(first.token).not.toBe(second.token);
  });

  it('when nft refuses a table while armed, then nothing changes and the new sleeper is ended', async () => {
    const before = await live();
    const refused = await run({
      table:
        'table inet routeplane {\n    chain input {\n        type filter hook input priority filter; policy accept;\n        tcp dport 70000 accept\n    }\n}\n',
      state: 'present',
      confirm_s: CONFIRM_S,
    });
    expect(refused.failed).toBe(true);
    expect(refused.msg).toMatch(/nft refused the table/);
    expect(await pendingFiles()).toEqual([]);
    await noSleeper();
    expect(await exists(`${base}.firewall.previous.nft`)).toBe(false);
    expect(await live()).toBe(before);
  });

  it('when the host is released while a revert is pending, then the revert is cancelled and routeplane’s table stays gone', async () => {
    expect(await port()).toBe('8002');
    // Armed for long enough that only the release can have ended its sleeper.
    const res = await apply(8006, CONFIRM_S);
    expect(res.armed).toBe(true);
    expect(await sleepers()).toEqual([res.pid]);
    const released = await run({ state: 'absent' });
    expect(released).toMatchObject({ changed: true, present: false });
    expect(await pendingFiles()).toEqual([]);
    await noSleeper();
    expect(await exists(`${base}.firewall.previous.nft`)).toBe(false);
    expect(await live()).toBeNull();
  });

  it('when there was no table before an unconfirmed apply, then the revert removes routeplane’s table', async () => {
    expect(await live()).toBeNull();
    const res = await apply(8007, REVERT_S);
    expect(res).toMatchObject({ changed: true, armed: true, revert: 'remove' });
    expect(await port()).toBe('8007');
    await poll(
      'the table removed',
      async () => ((await live()) === null ? true : undefined),
      20_000,
      100,
    );
    await noSleeper();
  });

  it('when a pending token names a pid that is not its sleeper, then the confirm never signals that process', async () => {
    const foreign = execa('sleep', ['60'], { reject: false });
    try {
      const token = 'a'.repeat(32);
      await writeFile(`${base}.firewall.pending-${token}`, JSON.stringify({ pid: foreign.pid }));
      const res = await run({ state: 'confirm', token });
      expect(res).toMatchObject({ confirmed: true, sleeper_ended: false });
      expect(await pendingFiles()).toEqual([]);
      await sleep(200);
      expect(foreign.exitCode).toBeNull();
      expect(foreign.signalCode).toBeNull();
    } finally {
      foreign.kill('SIGKILL');
      await foreign;
    }
  });

  it('when a pending token’s sleeper is gone (a recycled namespace inode, a killed process), then the next apply drops it and its saved table, and saves the live table for its own revert', async () => {
    const stale = 'b'.repeat(32);
    await writeFile(`${base}.firewall.pending-${stale}`, JSON.stringify({ pid: 0 }));
    await writeFile(
      `${base}.firewall.previous.nft`,
      'table inet routeplane\ndelete table inet routeplane\n',
    );
    const before = await live();
    const res = await apply(8009, REVERT_S);
    expect(res).toMatchObject({
      changed: true,
      armed: true,
      revert: before ? 'restore' : 'remove',
    });
    expect(await pendingFiles()).toEqual([`${path.basename(base)}.firewall.pending-${res.token}`]);
    await poll(
      'the revert',
      async () => ((await live()) === before ? true : undefined),
      20_000,
      100,
    );
    await noSleeper();
  });

  it('when confirm_s is 0 (a local connection), then an apply arms nothing', async () => {
    const res = await apply(8008, 0);
    expect(res.failed, res.msg).toBeFalsy();
    expect(res.armed).toBe(false);
    expect(await pendingFiles()).toEqual([]);
    expect(await sleepers()).toEqual([]);
    await run({ state: 'absent' });
  });
});
