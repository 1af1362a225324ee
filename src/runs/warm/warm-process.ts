import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import type { Logger } from '../../logger.ts';
import { eachLine, TailBuffer } from '../output-lines.ts';

/** The Python side: imports ansible-playbook's CLI once and forks a child per run. */
export const WARM_SCRIPT = fileURLToPath(
  new URL('../../../runner/warm_ansible.py', import.meta.url),
);

export interface WarmRunRequest {
  argv: string[];
  cwd: string;
  /** Unix sockets the service listens on; the child connects its stdout and stderr to them. */
  out: string;
  err: string;
}

export interface WarmExit {
  code: number | null;
  /** The signal's name when a signal ended it. */
  signal: string | null;
  /** Why nothing will be known about the run: the warm process ended or refused it. */
  lost?: string;
}

export interface WarmChild {
  /** The child's pid (it leads its own process group) once it is connected; null if it never was. */
  started: Promise<number | null>;
  exited: Promise<WarmExit>;
}

interface Pending {
  started(pid: number | null): void;
  exited(exit: WarmExit): void;
}

export interface WarmProcessOptions {
  python: string;
  env: Record<string, string>;
  cwd: string;
  logger: Logger;
  /** Told when a warm process that was ready has ended and a later run starts another. */
  onRestart?(): void;
}

const signalName = (n: number): string =>
  Object.entries(constants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`;

/**
 * The long-lived Python process of RUNNER=warm. It starts on first use and again after it
 * dies: runs inside one that died are reported lost (their children die with it, by
 * PR_SET_PDEATHSIG), and nothing waits on it forever.
 */
export class WarmProcess {
  private proc: ResultPromise | null = null;
  private ready: Promise<void> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private everReady = false;
  private stopping = false;

  constructor(private readonly opts: WarmProcessOptions) {}

  /** The pid of the Python parent, while one runs. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Starts the process if it is not running; resolves once Ansible is imported. */
  start(): Promise<void> {
    this.stopping = false;
    return (this.ready ??= this.spawn());
  }

  private spawn(): Promise<void> {
    const log = this.opts.logger;
    if (this.everReady) this.opts.onRestart?.();
    const proc = execa(this.opts.python, ['-u', WARM_SCRIPT], {
      cwd: this.opts.cwd,
      env: this.opts.env,
      extendEnv: false,
      stdin: 'pipe',
      reject: false,
      buffer: false,
      // Its own group: a terminal's Ctrl-C to the service must not reach the runs.
      detached: true,
    });
    this.proc = proc;
    // A write racing the process's death must not become an uncaught 'error'.
    proc.stdin?.on('error', () => undefined);
    const stderr = new TailBuffer(16_384);
    let markReady: () => void;
    let failStart: (err: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failStart = reject;
    });
    void eachLine(proc.stderr!, 1_048_576, (line) => {
      stderr.push(line.text);
      if (this.everReady) log.warn({ event: 'runner.warm_stderr', line: line.text }, 'warm runner');
    });
    void eachLine(proc.stdout!, 1_048_576, (line) => {
      let msg: {
        ev?: string;
        id?: number;
        pid?: number;
        code?: number | null;
        signal?: number | null;
        error?: string;
        python?: string;
        ansible?: string;
      };
      try {
        msg = JSON.parse(line.text);
      } catch {
        log.warn(
          { event: 'runner.warm_noise', line: line.text },
          'warm runner printed a non-message',
        );
        return;
      }
      const run = msg.id === undefined ? undefined : this.pending.get(msg.id);
      switch (msg.ev) {
        case 'ready':
          this.everReady = true;
          log.info(
            { event: 'runner.warm_ready', pid: proc.pid, python: msg.python, ansible: msg.ansible },
            'warm Ansible runner ready',
          );
          markReady();
          break;
        case 'started':
          run?.started(msg.pid ?? null);
          break;
        case 'exited':
          this.pending.delete(msg.id!);
          run?.started(null);
          run?.exited({
            code: msg.code ?? null,
            signal: msg.signal === null || msg.signal === undefined ? null : signalName(msg.signal),
          });
          break;
        case 'refused':
          this.pending.delete(msg.id!);
          run?.started(null);
          run?.exited({
            code: null,
            signal: null,
            lost: `the warm runner refused the run: ${msg.error}`,
          });
          break;
      }
    });
    void proc.then((result) => {
      if (this.proc === proc) {
        this.proc = null;
        this.ready = null;
      }
      const how = result.signal ? `signal ${result.signal}` : `exit ${result.exitCode}`;
      const why = `the warm Ansible process ended (${how})`;
      failStart(
        new Error(`${why}: ${stderr.text().trim().split('\n').slice(-5).join(' ') || 'no output'}`),
      );
      for (const [id, run] of this.pending) {
        this.pending.delete(id);
        run.started(null);
        run.exited({ code: null, signal: null, lost: why });
      }
      if (!this.stopping) log.warn({ event: 'runner.warm_ended', pid: proc.pid, how }, why);
    });
    // Whoever awaits start() sees the failure; a background start must not crash the service.
    ready.catch(() => undefined);
    return ready;
  }

  /** Forks a child for one run. Rejects only when the warm process cannot be started. */
  async run(request: WarmRunRequest): Promise<WarmChild> {
    await this.start();
    const proc = this.proc;
    const id = this.nextId++;
    let started!: (pid: number | null) => void;
    let exited!: (exit: WarmExit) => void;
    const child: WarmChild = {
      started: new Promise((r) => (started = r)),
      exited: new Promise((r) => (exited = r)),
    };
    let startedOnce = false;
    this.pending.set(id, {
      started: (pid) => {
        if (startedOnce) return;
        startedOnce = true;
        started(pid);
      },
      exited,
    });
    if (!proc?.stdin?.writable) {
      this.pending.delete(id);
      started(null);
      exited({ code: null, signal: null, lost: 'the warm Ansible process is not running' });
      return child;
    }
    proc.stdin.write(JSON.stringify({ op: 'run', id, ...request }) + '\n');
    return child;
  }

  /** Ends the process (its runs' groups are killed by it, or by PR_SET_PDEATHSIG). */
  async stop(): Promise<void> {
    this.stopping = true;
    const proc = this.proc;
    if (!proc) return;
    proc.stdin?.end();
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await proc;
    clearTimeout(timer);
  }
}
