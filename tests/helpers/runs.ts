import { existsSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import type { AnsibleRunner } from '../../src/runs/ansible-runner.ts';
import type { PlaybookRunner, RunHandle, RunOutcome, RunSpec } from '../../src/runs/types.ts';
import type { TestServer } from './server.ts';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value other than undefined, or fails after `ms`. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  ms = 10_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * A PlaybookRunner that starts no process: it records every spec it is given and ends each
 * run at once with `outcome`. For tests of the code around the runner.
 */
export class CountingRunner implements PlaybookRunner {
  readonly specs: RunSpec[] = [];
  outcome: RunOutcome = {
    status: 'succeeded',
    rc: 0,
    summary: {},
    results: [],
    error: null,
    log: '',
  };

  start(spec: RunSpec): RunHandle {
    this.specs.push(spec);
    return { done: Promise.resolve(this.outcome), cancel: () => undefined };
  }

  version(): Promise<string> {
    return Promise.resolve('ansible-playbook [fake]');
  }
}

export type RunnerConfig = ConstructorParameters<typeof AnsibleRunner>[0];

/** An AnsibleRunner's settings for tests: the real ansible-playbook, the repo's playbooks. */
export function testRunnerConfig(overrides: Partial<RunnerConfig>): RunnerConfig {
  return {
    ansiblePlaybook: 'ansible-playbook',
    inventoryPath: '/nonexistent',
    playbooksDir: path.resolve(import.meta.dirname, '../../playbooks'),
    runTimeoutMs: 60_000,
    runCancelGraceMs: 2_000,
    runLogMaxBytes: 262_144,
    vaultPassword: undefined,
    vaultPasswordFile: undefined,
    runnerMode: 'warm',
    sshMasterIdleMs: 300_000,
    hostPython: '/usr/bin/python3',
    ...overrides,
  };
}

export interface ProcInfo {
  pid: number;
  ppid: number;
  pgrp: number;
  session: number;
  state: string;
  cmdline: string;
}

export async function procInfo(pid: string | number): Promise<ProcInfo | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    // Fields after "(comm)": state ppid pgrp session ...
    const [state, ppid, pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return {
      pid: Number(pid),
      ppid: Number(ppid),
      pgrp: Number(pgrp),
      session: Number(session),
      state: state!,
      cmdline,
    };
  } catch {
    return undefined; // exited while we looked
  }
}

/** Every live (non-zombie) process; zombies have exited, only their parent can reap them. */
export async function liveProcesses(): Promise<ProcInfo[]> {
  const pids = (await readdir('/proc')).filter((p) => /^\d+$/.test(p));
  const all = await Promise.all(pids.map(procInfo));
  return all.filter((p): p is ProcInfo => p !== undefined && p.state !== 'Z');
}

/** Alive and not a zombie (a killed process whose parent has not reaped it yet). */
export async function isRunning(pid: number): Promise<boolean> {
  const info = await procInfo(String(pid));
  return info !== undefined && info.state !== 'Z';
}

const describe = (p: ProcInfo) => `${p.pid}: ${p.cmdline.replaceAll('\0', ' ').trim()}`;

export async function processesInGroup(pgid: number): Promise<string[]> {
  return (await liveProcesses()).filter((p) => p.pgrp === pgid).map(describe);
}

export async function processesMentioning(text: string): Promise<string[]> {
  return (await liveProcesses())
    .filter((p) => p.pid !== process.pid && p.cmdline.includes(text))
    .map(describe);
}

/** Every process command line, NUL-separated arguments joined with spaces. */
export async function allCommandLines(): Promise<string[]> {
  return (await liveProcesses()).map(describe);
}

/** What a test can see of one ansible-playbook process the server spawned for a run. */
export interface SpawnedRun {
  /** The ansible-playbook pid, which is also its process group id. */
  pgid: number;
  /** The run's temp dir: ansible-playbook's working directory. */
  workspace: string;
}

/** The server logs `run.spawned` with the pid; the pid's cwd is the run's temp dir. */
export async function spawnedRun(
  server: Pick<TestServer, 'logs'>,
  runId: string,
): Promise<SpawnedRun> {
  const pgid = await eventually(`run.spawned for ${runId}`, async () => {
    for (const line of server.logs) {
      const entry = JSON.parse(line) as { event?: string; run_id?: string; pid?: number };
      if (entry.event === 'run.spawned' && entry.run_id === runId) return entry.pid;
    }
    return undefined;
  });
  const workspace = await readlink(`/proc/${pgid}/cwd`);
  return { pgid, workspace };
}

export function spawnedRunIds(server: TestServer): string[] {
  return server.logs
    .map((line) => JSON.parse(line) as { event?: string; run_id?: string })
    .filter((e) => e.event === 'run.spawned')
    .map((e) => e.run_id!);
}

/** What must be left of a run once it has ended: nothing. */
export async function leftovers(run: SpawnedRun) {
  return {
    group: await processesInGroup(run.pgid),
    mentioning: await processesMentioning(run.workspace),
    workspaceExists: existsSync(run.workspace),
  };
}

/** Polls until the run has left nothing behind (it may take a moment for killed ssh to go). */
export async function expectNothingLeft(run: SpawnedRun, ms = 5_000) {
  const clean = { group: [], mentioning: [], workspaceExists: false };
  const deadline = Date.now() + ms;
  let seen = await leftovers(run);
  while (JSON.stringify(seen) !== JSON.stringify(clean) && Date.now() < deadline) {
    await sleep(100);
    seen = await leftovers(run);
  }
  return seen;
}

/** Polls GET /v1/runs/{id} until `accept` holds for the body. */
export async function runWhen(
  server: Pick<TestServer, 'request'>,
  id: string,
  accept: (run: { status: string }) => boolean,
  ms = 30_000,
) {
  return eventually(
    `run ${id} to reach the expected state`,
    async () => {
      const res = await server.request('GET', `/v1/runs/${id}`, { token: 'viewer' });
      return accept(res.body) ? res.body : undefined;
    },
    ms,
  );
}
