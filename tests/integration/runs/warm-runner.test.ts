import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { load, dump } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/logger.ts';
import { AnsibleRunner } from '../../../src/runs/ansible-runner.ts';
import { hostKey } from '../../../src/runs/ssh-masters.ts';
import type { RunSpec } from '../../../src/runs/types.ts';
import { useLab } from '../../helpers/lab.ts';
import {
  eventually,
  procInfo,
  processesInGroup,
  testRunnerConfig,
  type ProcInfo,
  type RunnerConfig,
} from '../../helpers/runs.ts';
import { FIXTURE_CATALOG, REPO } from '../../helpers/server.ts';

const T = 90_000;
const silent = createLogger('silent');

const runnerConfig = (overrides: Partial<RunnerConfig>) => testRunnerConfig(overrides);

type Proc = ProcInfo;
const proc = async (pid: number) => {
  const p = await procInfo(pid);
  return p && p.state !== 'Z' ? { ...p, cmdline: p.cmdline.replaceAll('\0', ' ') } : undefined;
};

/** The warm Python processes this test process started. */
async function warmProcesses(): Promise<Proc[]> {
  const pids = (await readdir('/proc')).filter((p) => /^\d+$/.test(p)).map(Number);
  const all = await Promise.all(pids.map(proc));
  return all.filter(
    (p): p is Proc =>
      p !== undefined && p.ppid === process.pid && p.cmdline.includes('warm_ansible.py'),
  );
}

/** The pid of the master behind a control socket, from `ssh -O check`. */
async function masterPid(socket: string): Promise<number | null> {
  const r = await execa('ssh', ['-O', 'check', '-o', `ControlPath=${socket}`, 'x'], {
    reject: false,
  });
  const m = /Master running \(pid=(\d+)\)/.exec(`${r.stdout}${r.stderr}`);
  return m ? Number(m[1]) : null;
}

describe('the warm runner (RUNNER=warm)', { timeout: T }, () => {
  const fleet = useLab(2);
  let dir: string;
  let root: string;
  let catalog: string;
  let runner: AnsibleRunner;
  let restarts = 0;

  const spec = (
    playbookFile: string,
    hosts: string[],
    extravars: Record<string, unknown> = {},
    onSpawned?: (pgid: number) => void,
  ): RunSpec => ({
    runId: `t-${playbookFile}`,
    playbookRoot: catalog,
    playbookFile,
    hosts,
    extravars,
    workspaceParent: root,
    onSpawned,
  });

  const masterSockets = async (host: string) =>
    (await readdir(path.join(root, 'm')).catch(() => [] as string[]))
      .filter((s) => s.startsWith(`${hostKey(host)}-`))
      .map((s) => path.join(root, 'm', s));

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'warm-test-'));
    root = path.join(dir, 'root');
    await mkdir(root, { mode: 0o700 });
    catalog = FIXTURE_CATALOG;
    runner = new AnsibleRunner(runnerConfig({ inventoryPath: fleet.lab.inventoryPath }), silent, {
      workRoot: () => root,
      onWarmRestart: () => restarts++,
    });
  });

  afterAll(async () => {
    await runner?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('when a playbook runs, then it runs in a child forked by the warm process, in a session of its own, in the run workspace', async () => {
    let seen: Proc | undefined;
    let warm: Proc[] = [];
    const outcome = await runner.start(
      spec('echo.yml', ['h1'], { text: 'a', items_list: [1], options: {}, count: 1 }, (pgid) => {
        void (async () => {
          seen = await proc(pgid);
          warm = await warmProcesses();
        })();
      }),
    ).done;
    expect(outcome).toMatchObject({ status: 'succeeded', rc: 0, error: null });
    expect(await runner.mode).toBe('warm');
    expect(warm).toHaveLength(1);
    expect(seen).toBeDefined();
    expect(seen!.ppid).toBe(warm[0]!.pid);
    expect(seen!.session).toBe(seen!.pid);
    expect(seen!.cmdline).toContain('warm_ansible.py');
  });

  it('when runs follow each other with different arguments, then each sees only its own (every run is a fresh fork)', async () => {
    const first = await runner.start(
      spec('echo.yml', ['h1'], { text: 'first', items_list: [], options: {}, count: 1 }),
    ).done;
    const second = await runner.start(
      spec('echo.yml', ['h2'], { text: 'second', items_list: [], options: {}, count: 2 }),
    ).done;
    const echoed = (o: typeof first) =>
      o.results.filter((r) => r.task === 'echo text').map((r) => [r.host, r.data.msg]);
    expect(echoed(first)).toEqual([['h1', 'first']]);
    expect(echoed(second)).toEqual([['h2', 'second']]);
    expect(Object.keys(second.summary)).toEqual(['h2']);
  });

  it('when a run has ended, then the warm process keeps its local temp dir (children leave by os._exit, not atexit)', async () => {
    const tmp = path.join(root, 'w', 'tmp');
    const before = (await readdir(tmp)).filter((d) => d.startsWith('ansible-local-'));
    expect(before.length).toBeGreaterThan(0);
    const outcome = await runner.start(
      spec('echo.yml', ['h1'], { text: 'x', items_list: [], options: {}, count: 0 }),
    ).done;
    expect(outcome.status).toBe('succeeded');
    for (const d of before) expect(existsSync(path.join(tmp, d))).toBe(true);
  });

  it("when routeplane's own gather playbook runs, then its module is found in the library fixed when the warm process started", async () => {
    const outcome = await runner.start({
      runId: 't-gather',
      playbookRoot: path.join(REPO, 'playbooks'),
      playbookFile: 'gather_state.yml',
      hosts: ['h1'],
      extravars: {},
      workspaceParent: root,
    }).done;
    expect(outcome).toMatchObject({ status: 'succeeded', error: null });
    expect(outcome.results.some((r) => r.module === 'routeplane_state' && r.status === 'ok')).toBe(
      true,
    );
  });

  it('when a run is canceled, then its process group is gone by the time it is reported canceled', async () => {
    let pgid = 0;
    const handle = runner.start(spec('pause.yml', ['h1'], {}, (p) => (pgid = p)));
    await eventually('the pause task to start', async () =>
      pgid && (await processesInGroup(pgid)).length > 0 ? true : undefined,
    );
    // past its ping: wait for the pause itself
    await new Promise((r) => setTimeout(r, 1500));
    handle.cancel();
    const outcome = await handle.done;
    expect(outcome).toMatchObject({ status: 'canceled', error: 'canceled on request' });
    expect(await processesInGroup(pgid)).toEqual([]);
  });

  it('when a run outlives RUN_TIMEOUT_S, then it is timed_out and its process group is gone', async () => {
    const short = new AnsibleRunner(
      runnerConfig({ inventoryPath: fleet.lab.inventoryPath, runTimeoutMs: 4_000 }),
      silent,
      { workRoot: () => root },
    );
    try {
      let pgid = 0;
      const outcome = await short.start(spec('pause.yml', ['h1'], {}, (p) => (pgid = p))).done;
      expect(outcome).toMatchObject({ status: 'timed_out', error: 'run exceeded 4s' });
      expect(await processesInGroup(pgid)).toEqual([]);
    } finally {
      await short.close();
    }
  });

  it('when the warm process dies mid-run, then the run is an error saying so, its group is gone, and the next run starts a new warm process', async () => {
    let pgid = 0;
    const handle = runner.start(spec('pause.yml', ['h1'], {}, (p) => (pgid = p)));
    await eventually('the run to start', async () => (pgid ? true : undefined));
    const [warm] = await warmProcesses();
    expect(warm).toBeDefined();
    process.kill(warm!.pid, 'SIGKILL');
    const outcome = await handle.done;
    expect(outcome.status).toBe('error');
    expect(outcome.error).toMatch(/the warm Ansible process ended \(signal SIGKILL\)/);
    expect(await processesInGroup(pgid)).toEqual([]);
    const before = restarts;
    const next = await runner.start(
      spec('echo.yml', ['h1'], { text: 'again', items_list: [], options: {}, count: 0 }),
    ).done;
    expect(next.status).toBe('succeeded');
    expect(restarts).toBe(before + 1);
    const now = await warmProcesses();
    expect(now.map((p) => p.pid)).not.toContain(warm!.pid);
    expect(now).toHaveLength(1);
  });

  // ping connects (debug runs on the controller and opens no SSH connection).
  describe('SSH masters', () => {
    it("when a host is run against twice, then the second run reuses the first run's master", async () => {
      expect((await runner.start(spec('ping.yml', ['h2'])).done).status).toBe('succeeded');
      const [socket, ...more] = await masterSockets('h2');
      expect(more).toEqual([]);
      const pid = await masterPid(socket!);
      expect(pid).not.toBeNull();
      expect((await runner.start(spec('ping.yml', ['h2'])).done).status).toBe('succeeded');
      expect(await masterSockets('h2')).toEqual([socket]);
      expect(await masterPid(socket!)).toBe(pid);
    });

    it("when a host's connection settings change, then runs use a new master, never the old one", async () => {
      await runner.start(spec('ping.yml', ['h2'])).done;
      const [old] = await masterSockets('h2');
      const inv = load(await readFile(fleet.lab.inventoryPath, 'utf8')) as {
        lab: { hosts: Record<string, Record<string, unknown>> };
      };
      const h2 = inv.lab.hosts.h2!;
      h2.ansible_ssh_common_args = `${String(h2.ansible_ssh_common_args)} -o ConnectTimeout=9`;
      const changed = path.join(dir, 'changed.yml');
      await writeFile(changed, dump(inv));
      const other = new AnsibleRunner(runnerConfig({ inventoryPath: changed }), silent, {
        workRoot: () => root,
      });
      try {
        expect((await other.start(spec('ping.yml', ['h2'])).done).status).toBe('succeeded');
        const now = await masterSockets('h2');
        expect(now).toHaveLength(2);
        expect(now).toContain(old);
      } finally {
        await other.close();
      }
    });

    it('when a master has been idle for SSH_MASTER_IDLE_S, then ssh closes it', async () => {
      const brief = new AnsibleRunner(
        runnerConfig({ inventoryPath: fleet.lab.inventoryPath, sshMasterIdleMs: 1_000 }),
        silent,
        { workRoot: () => path.join(root, 'brief') },
      );
      await mkdir(path.join(root, 'brief'), { mode: 0o700 });
      try {
        // The master's socket is noted while the run goes: at 1 s of idle a loaded machine may
        // close it before the run has been read back.
        const dir = path.join(root, 'brief', 'm');
        const seen = new Set<string>();
        const note = async () => {
          for (const s of await readdir(dir).catch(() => [] as string[])) {
            if (s.startsWith(`${hostKey('h1')}-`)) seen.add(s);
          }
        };
        let watching = true;
        const watcher = (async () => {
          while (watching) {
            await note();
            await new Promise((r) => setTimeout(r, 25));
          }
        })();
        const outcome = await brief.start({ ...spec('ping.yml', ['h1']), workspaceParent: root })
          .done;
        watching = false;
        await watcher;
        expect(outcome.status).toBe('succeeded');
        const [socket] = [...seen];
        expect(socket).toBeDefined();
        await eventually(
          'ssh to close the idle master',
          async () => ((await masterPid(path.join(dir, socket!))) === null ? true : undefined),
          15_000,
        );
      } finally {
        await brief.close();
      }
    });

    it('when a host leaves the inventory, then its masters are closed and the others kept', async () => {
      await runner.start(spec('ping.yml', ['h1', 'h2'])).done;
      expect(await masterSockets('h1')).not.toEqual([]);
      await runner.retainHosts(['h1']);
      expect(await masterSockets('h2')).toEqual([]);
      const [kept] = await masterSockets('h1');
      expect(await masterPid(kept!)).not.toBeNull();
    });

    it('when the runner closes, then the warm process and every master are gone', async () => {
      await runner.start(spec('ping.yml', ['h1'])).done;
      const [socket] = await masterSockets('h1');
      const pid = await masterPid(socket!);
      expect(pid).not.toBeNull();
      await runner.close();
      expect(await warmProcesses()).toEqual([]);
      expect(await masterSockets('h1')).toEqual([]);
      expect(await proc(pid!)).toBeUndefined();
    });
  });
});
