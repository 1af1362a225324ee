import path from 'node:path';
import { execa } from 'execa';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { ansibleBaseEnvironment } from './ansible-environment.ts';
import { collectJsonlEvent, parseJsonlEvent, ResultsCollector } from './json-extractor.ts';
import { eachLine, TailBuffer } from './output-lines.ts';
import { closeSshMasters, signalGroup } from './process-reaper.ts';
import { createWorkspace, removeWorkspace, type RunWorkspace } from './run-workspace.ts';
import type { PlaybookRunner, RunHandle, RunOutcome, RunSpec } from './types.ts';

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
>;

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
  constructor(
    private readonly config: RunnerConfig,
    private readonly logger: Logger,
  ) {}

  async version(): Promise<string> {
    const { stdout } = await execa(this.config.ansiblePlaybook, ['--version'], { timeout: 30_000 });
    return stdout.split('\n')[0] ?? stdout;
  }

  private async vaultPassword(): Promise<string | undefined> {
    if (this.config.vaultPassword !== undefined) return this.config.vaultPassword;
    if (!this.config.vaultPasswordFile) return undefined;
    const { readFile } = await import('node:fs/promises');
    return (await readFile(this.config.vaultPasswordFile, 'utf8')).replace(/\r?\n$/, '');
  }

  private environment(ws: RunWorkspace): Record<string, string> {
    return {
      ...ansibleBaseEnvironment(),
      ANSIBLE_STDOUT_CALLBACK: 'ansible.posix.jsonl',
      ANSIBLE_LOAD_CALLBACK_PLUGINS: 'True',
      ANSIBLE_PIPELINING: 'True',
      ANSIBLE_HOST_KEY_CHECKING: 'True',
      ANSIBLE_RETRY_FILES_ENABLED: 'False',
      ANSIBLE_FORCE_COLOR: 'False',
      ANSIBLE_SSH_CONTROL_PATH_DIR: ws.controlPathDir,
      // Explicit, so a control_path in ~/.ansible.cfg or /etc/ansible cannot move the sockets
      // out of the run's directory (where they are found and closed) or share them between
      // runs. `%%C` is ssh's own hash of the connection, escaped for Ansible's % formatting.
      ANSIBLE_SSH_CONTROL_PATH: '%(directory)s/%%C',
      ANSIBLE_LOCAL_TEMP: ws.localTempDir,
      ANSIBLE_LIBRARY: ws.libraryDir,
      ANSIBLE_PYTHON_INTERPRETER: 'auto_silent',
      ANSIBLE_SYSTEM_WARNINGS: 'False',
      PYTHONUNBUFFERED: '1',
    };
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
      const args = [
        '-i',
        ws.inventoryPath,
        '-e',
        `@${ws.extravarsPath}`,
        '--limit',
        // Names were checked against the inventory; joined as a plain list, never a pattern file.
        spec.hosts.join(','),
      ];
      if (ws.vaultPasswordPath) args.push('--vault-password-file', ws.vaultPasswordPath);
      args.push(path.join(ws.projectDir, spec.playbookFile));
      const child = execa(this.config.ansiblePlaybook, args, {
        cwd: ws.dir,
        env: this.environment(ws),
        extendEnv: false,
        detached: true,
        reject: false,
        stdin: 'ignore',
        // Read as streams below: no whole-process buffer, whatever the run prints.
        buffer: false,
      });
      pgid = child.pid;
      if (pgid !== undefined) {
        log.info(
          { event: 'run.spawned', pid: pgid, hosts: spec.hosts.length },
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
            if (ev) collectJsonlEvent(collector, ev);
            else if (line.cut)
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
      const [result] = await Promise.all([child, ...reading]);
      const stderr = stderrTail.text();
      const rc = typeof result.exitCode === 'number' ? result.exitCode : null;
      const base = { rc, ...collector.extracted(), log: tail.text() };
      if (timedOut) {
        return {
          ...base,
          status: 'timed_out',
          error: `run exceeded ${this.config.runTimeoutMs / 1000}s`,
        };
      }
      if (hooks.isCanceled()) return { ...base, status: 'canceled', error: 'canceled on request' };
      if (!collector.sawRecap) {
        const why = stopReason(stderr);
        // No exit code and no signal: the process never ran (e.g. ENOENT, EACCES).
        const notStarted = rc === null && !result.signal;
        return {
          ...base,
          status: 'error',
          error:
            why ||
            (notStarted
              ? `ansible-playbook could not be started: ${result.originalMessage ?? result.message}`
              : collector.resultCount > 0
                ? `ansible-playbook exited with ${rc ?? result.signal} before its recap`
                : `ansible-playbook exited with ${rc ?? result.signal} and printed no results`),
        };
      }
      return { ...base, status: rc === 0 ? 'succeeded' : 'failed', error: null };
    } finally {
      clearTimeout(timer);
      clearTimeout(killTimer);
      if (pgid !== undefined) signalGroup(pgid, 'SIGKILL');
      try {
        await closeSshMasters(ws.controlPathDir, ws.dir);
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
