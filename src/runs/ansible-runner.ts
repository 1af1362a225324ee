import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { ansibleRunEnvironment } from './ansible-environment.ts';
import {
  collectJsonlEvent,
  parseJsonlEvent,
  progressOf,
  ResultsCollector,
} from './json-extractor.ts';
import { eachLine, TailBuffer } from './output-lines.ts';
import type { PlaybookLauncher } from './playbook-launcher.ts';
import { closeSshMasters, killGroupAndWait, signalGroup } from './process-reaper.ts';
import { createWorkspace, removeWorkspace, type RunWorkspace } from './run-workspace.ts';
import { SpawnLauncher } from './spawn-launcher.ts';
import { controlPathVar, SshMasters } from './ssh-masters.ts';
import type { PlaybookRunner, RunHandle, RunOutcome, RunSpec } from './types.ts';
import { ansiblePython } from './warm/ansible-python.ts';
import { WarmLauncher } from './warm/warm-launcher.ts';
import { WarmProcess } from './warm/warm-process.ts';

type RunnerConfig = Pick<
  Config,
  | 'ansiblePlaybook'
  | 'inventoryPath'
  | 'playbooksDir'
  | 'runTimeoutMs'
  | 'runCancelGraceMs'
  | 'runLogMaxBytes'
  | 'vaultPassword'
  | 'vaultPasswordFile'
  | 'runnerMode'
  | 'sshMasterIdleMs'
  | 'hostPython'
>;

/** Ansible workers of one run at most (each a forked process of the runner). */
const MAX_FORKS = 50;

export interface RunnerOptions {
  /**
   * The instance's own directory (where run workspaces go), once the server has claimed it:
   * the SSH masters and the warm process's files live there, so the start-up sweep of a dead
   * instance's directory also ends its masters. A private temp dir when there is none.
   */
  workRoot?: () => string | undefined;
  /** Told each time a warm process is started again after one ended. */
  onWarmRestart?(): void;
}

/**
 * Why ansible stopped: from its last `ERROR!` line on (a YAML error's explanation spans many
 * lines and ends with the offending source, not the reason), else the last lines of stderr.
 */
function stopReason(stderr: string): string {
  const lines = stderr.trim().split('\n');
  let from = Math.max(0, lines.length - 5);
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i]!.startsWith('ERROR!')) {
      from = i;
      break;
    }
  }
  return lines
    .slice(from, from + 20)
    .join('\n')
    .trim();
}

/**
 * The longest stdout line parsed as an event. One event is one task's result on one host, so
 * only a module returning tens of MiB comes near it; a longer line is cut, kept in the log's
 * tail, and its result is missing (the recap still counts it).
 */
const MAX_EVENT_LINE_BYTES = 32 * 1024 * 1024;

export class AnsibleRunner implements PlaybookRunner {
  private root: Promise<string> | null = null;
  private ownRoot: string | null = null;
  private launcher: Promise<PlaybookLauncher> | null = null;
  private masters: Promise<SshMasters> | null = null;

  constructor(
    private readonly config: RunnerConfig,
    private readonly logger: Logger,
    private readonly options: RunnerOptions = {},
  ) {}

  async version(): Promise<string> {
    const { stdout } = await execa(this.config.ansiblePlaybook, ['--version'], { timeout: 30_000 });
    return stdout.split('\n')[0] ?? stdout;
  }

  /** Whether masters outlive a run (SSH_MASTER_IDLE_S above 0). */
  private get persistentMasters(): boolean {
    return this.config.sshMasterIdleMs > 0;
  }

  private workRoot(): Promise<string> {
    return (this.root ??= (async () => {
      const given = this.options.workRoot?.();
      if (given) return given;
      this.ownRoot = await mkdtemp(path.join(os.tmpdir(), 'rp-runner-'));
      return this.ownRoot;
    })());
  }

  async mastersDir(): Promise<string | null> {
    return this.persistentMasters ? (await this.sshMasters()).dir : null;
  }

  /** The instance's directory of SSH masters kept across runs, made on first use. */
  private sshMasters(): Promise<SshMasters> {
    return (this.masters ??= (async () => {
      const dir = path.join(await this.workRoot(), 'm');
      await mkdir(dir, { recursive: true, mode: 0o700 });
      return new SshMasters(dir, this.logger);
    })());
  }

  /** Where a run's control sockets go: the kept masters, or its own workspace when none are. */
  private socketsDir(masters: SshMasters, ws: RunWorkspace): string {
    return this.persistentMasters ? masters.dir : ws.controlPathDir;
  }

  private environment(dirs: Parameters<typeof ansibleRunEnvironment>[0]): Record<string, string> {
    return ansibleRunEnvironment(
      dirs,
      Math.round(this.config.sshMasterIdleMs / 1000),
      this.config.hostPython,
    );
  }

  private spawnLauncher(masters: SshMasters): PlaybookLauncher {
    return new SpawnLauncher(this.config.ansiblePlaybook, (ws) =>
      this.environment({
        controlPathDir: this.socketsDir(masters, ws),
        localTempDir: ws.localTempDir,
        libraryDir: ws.libraryDir,
      }),
    );
  }

  /**
   * RUNNER=warm, unless ansible-playbook is not a Python script (a wrapper a warm process
   * cannot stand in for): then runs are spawned, and the log says so once.
   */
  private async createLauncher(): Promise<PlaybookLauncher> {
    const masters = await this.sshMasters();
    if (this.config.runnerMode === 'spawn') return this.spawnLauncher(masters);
    const python = await ansiblePython(this.config.ansiblePlaybook);
    if (!python) {
      this.logger.warn(
        { event: 'runner.warm_unavailable', ansible_playbook: this.config.ansiblePlaybook },
        'ansible-playbook is not a Python script; runs are spawned (RUNNER=spawn)',
      );
      return this.spawnLauncher(masters);
    }
    // Fixed for the warm process's life: Ansible reads these once, at import.
    const dir = path.join(await this.workRoot(), 'w');
    await mkdir(path.join(dir, 'tmp'), { recursive: true, mode: 0o700 });
    const library = path.join(dir, 'library');
    const source = path.join(this.config.playbooksDir, 'library');
    await cp(source, library, { recursive: true, dereference: true }).catch(() =>
      mkdir(library, { recursive: true }),
    );
    const warm = new WarmProcess({
      python,
      cwd: dir,
      env: this.environment({
        // Runs name each host's socket (ansible_control_path); this only has to exist.
        controlPathDir: masters.dir,
        localTempDir: path.join(dir, 'tmp'),
        libraryDir: library,
      }),
      logger: this.logger,
      onRestart: () => this.options.onWarmRestart?.(),
    });
    return new WarmLauncher(warm);
  }

  private getLauncher(): Promise<PlaybookLauncher> {
    return (this.launcher ??= this.createLauncher());
  }

  /** Starts what the first run would otherwise wait for (the warm process); never throws. */
  prepare(): void {
    void this.getLauncher()
      .then(async (l) => {
        if (l instanceof WarmLauncher) await l.prepare();
      })
      .catch(() => undefined);
  }

  get mode(): Promise<'spawn' | 'warm'> {
    return this.getLauncher().then((l) => l.mode);
  }

  /** Closes the SSH masters of hosts no longer in the inventory. */
  async retainHosts(hosts: Iterable<string>): Promise<void> {
    if (!this.persistentMasters || !this.masters) return;
    await (await this.masters).retain(hosts);
  }

  /** At shutdown: the warm process, then every SSH master. */
  async close(): Promise<void> {
    if (this.launcher) await (await this.launcher.catch(() => null))?.close();
    if (this.masters) await (await this.masters).closeAll();
    if (this.ownRoot) await rm(this.ownRoot, { recursive: true, force: true, maxRetries: 3 });
  }

  private async vaultPassword(): Promise<string | undefined> {
    if (this.config.vaultPassword !== undefined) return this.config.vaultPassword;
    if (!this.config.vaultPasswordFile) return undefined;
    const { readFile } = await import('node:fs/promises');
    return (await readFile(this.config.vaultPasswordFile, 'utf8')).replace(/\r?\n$/, '');
  }

  start(spec: RunSpec): RunHandle {
    let cancelRequested = false;
    let cancelNow: (() => void) | null = null;
    const done = this.execute(spec, {
      isCanceled: () => cancelRequested,
      onCancelable: (fn) => {
        cancelNow = fn;
        if (cancelRequested) fn();
      },
    });
    return {
      done,
      cancel: () => {
        cancelRequested = true;
        cancelNow?.();
      },
    };
  }

  private async execute(
    spec: RunSpec,
    hooks: { isCanceled: () => boolean; onCancelable: (fn: () => void) => void },
  ): Promise<RunOutcome> {
    const log = this.logger.child({ run_id: spec.runId });
    const launcher = await this.getLauncher();
    const masters = await this.sshMasters();
    const ws = await createWorkspace({
      playbookRoot: spec.playbookRoot,
      libraryDir: path.join(this.config.playbooksDir, 'library'),
      inventoryPath: this.config.inventoryPath,
      extravars: spec.extravars,
      hostVars: spec.hostVars,
      vaultPassword: await this.vaultPassword(),
      parentDir: spec.workspaceParent,
    });
    let pgid: number | undefined;
    let timer: NodeJS.Timeout | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let timedOut = false;
    try {
      if (hooks.isCanceled()) return this.endedWithoutRun('canceled', 'canceled before it started');
      // routeplane's own extra vars (not from any request, so not marked unsafe), last so
      // nothing a request sends can override them: each host's SSH master socket.
      const connectionVars = path.join(ws.dir, 'connection.json');
      await writeFile(
        connectionVars,
        JSON.stringify({ ansible_control_path: controlPathVar(this.socketsDir(masters, ws)) }),
        { mode: 0o600 },
      );
      const args = [
        '-i',
        ws.inventoryPath,
        '-e',
        `@${ws.extravarsPath}`,
        '-e',
        `@${connectionVars}`,
        '--limit',
        // Names were checked against the inventory; joined as a plain list, never a pattern file.
        spec.hosts.join(','),
        // A worker per host (Ansible's default is 5): a host's firewall confirm must not wait
        // behind other hosts' tasks, and waiting on SSH is most of a host's time.
        '--forks',
        String(Math.min(Math.max(spec.hosts.length, 5), MAX_FORKS)),
      ];
      if (ws.vaultPasswordPath) args.push('--vault-password-file', ws.vaultPasswordPath);
      args.push(path.join(ws.projectDir, spec.playbookFile));
      const child = await launcher.launch(args, ws);
      pgid = child.pgid;
      if (pgid !== undefined) {
        log.info(
          { event: 'run.spawned', pid: pgid, hosts: spec.hosts.length, runner: launcher.mode },
          'ansible-playbook started',
        );
        spec.onSpawned?.(pgid);
      }
      const interrupt = () => {
        if (pgid === undefined) return;
        signalGroup(pgid, 'SIGINT');
        killTimer ??= setTimeout(() => signalGroup(pgid!, 'SIGKILL'), this.config.runCancelGraceMs);
      };
      hooks.onCancelable(interrupt);
      timer = setTimeout(() => {
        timedOut = true;
        interrupt();
      }, this.config.runTimeoutMs);
      const collector = new ResultsCollector();
      // The stored log: stderr and whatever stdout line is not an event, interleaved.
      const tail = new TailBuffer(this.config.runLogMaxBytes);
      // stderr alone, for the reason a run stopped.
      const stderrTail = new TailBuffer(this.config.runLogMaxBytes);
      const reading: Promise<void>[] = [];
      if (child.stdout) {
        reading.push(
          eachLine(child.stdout, MAX_EVENT_LINE_BYTES, (line) => {
            const ev = line.cut ? null : parseJsonlEvent(line.text);
            if (ev) {
              collectJsonlEvent(collector, ev);
              if (spec.onProgress) for (const p of progressOf(ev)) spec.onProgress(p);
            } else if (line.cut)
              tail.push(`[routeplane: an output line of ${line.bytes} bytes was cut]`);
            else if (line.text.trim()) tail.push(line.text);
          }),
        );
      }
      if (child.stderr) {
        reading.push(
          eachLine(child.stderr, this.config.runLogMaxBytes, (line) => {
            tail.push(line.text);
            stderrTail.push(line.text);
          }),
        );
      }
      const [exit] = await Promise.all([child.exited, ...reading]);
      // Reported only once nothing of the run can still act on a host.
      if (pgid !== undefined) await killGroupAndWait(pgid);
      const stderr = stderrTail.text();
      const rc = exit.exitCode;
      const base = { rc, ...collector.extracted(), log: tail.text() };
      if (timedOut) {
        return {
          ...base,
          status: 'timed_out',
          error: `run exceeded ${this.config.runTimeoutMs / 1000}s`,
        };
      }
      if (hooks.isCanceled()) return { ...base, status: 'canceled', error: 'canceled on request' };
      if (exit.lost) return { ...base, status: 'error', error: exit.lost };
      if (!collector.sawRecap) {
        const why = stopReason(stderr);
        return {
          ...base,
          status: 'error',
          error:
            why ||
            (exit.notStarted !== undefined
              ? `ansible-playbook could not be started: ${exit.notStarted}`
              : collector.resultCount > 0
                ? `ansible-playbook exited with ${rc ?? exit.signal} before its recap`
                : `ansible-playbook exited with ${rc ?? exit.signal} and printed no results`),
        };
      }
      return { ...base, status: rc === 0 ? 'succeeded' : 'failed', error: null };
    } finally {
      clearTimeout(timer);
      clearTimeout(killTimer);
      if (pgid !== undefined) signalGroup(pgid, 'SIGKILL');
      try {
        // Masters of a run are its own only when they do not outlive it.
        if (!this.persistentMasters) await closeSshMasters(ws.controlPathDir, ws.dir);
      } finally {
        // The secrets in the workspace (vault password, extravars) go whatever happened above.
        await removeWorkspace(ws);
        log.debug({ event: 'run.cleaned' }, 'run workspace removed');
      }
    }
  }

  private endedWithoutRun(status: 'canceled', error: string): RunOutcome {
    return { status, rc: null, summary: {}, results: [], error, log: '' };
  }
}
