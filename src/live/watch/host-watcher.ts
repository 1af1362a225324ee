import { stat } from 'node:fs/promises';
import { stateFromModuleData, type HostState } from '../../hosts/host-state.ts';
import type { Logger } from '../../logger.ts';
import { eachLine, TailBuffer } from '../../runs/output-lines.ts';
import {
  spawnWatchProcess,
  watchCommand,
  type WatchChild,
  type WatchConnection,
  type WatchExit,
  type WatchSpawner,
  type WatchTarget,
} from './watch-connection.ts';

export type WatchState = 'connecting' | 'watching' | 'unreachable' | 'not_watched';

export interface WatchStatus {
  state: WatchState;
  /** Why the host is unreachable or not watched, or why its last read failed; else null. */
  error: string | null;
  /** When the watcher entered `state`. */
  since: Date;
}

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** Each delay is spread by up to this fraction either way, so a fleet does not reconnect in step. */
  jitter: number;
  /** A connection that stayed up this long resets the sequence to initialMs. */
  healthyMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = {
  initialMs: 1000,
  maxMs: 30_000,
  jitter: 0.2,
  healthyMs: 60_000,
};

/** The wait before reconnect attempt `attempt` (0 first): doubling to maxMs, then jittered. */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (1 - policy.jitter + 2 * policy.jitter * random()));
}

const isSocket = (p: string) =>
  stat(p).then(
    (s) => s.isSocket(),
    () => false,
  );

/** What every long-lived script session needs: see ScriptSession. */
export interface ScriptSessionOptions {
  host: string;
  connection: WatchConnection;
  logger: Logger;
  /** The Python source to run on the host (see loadWatchScript). */
  script: () => Promise<string>;
  onStatus(status: WatchStatus): void;
  spawn?: WatchSpawner;
  backoff?: Partial<BackoffPolicy>;
  /** How long a connection may take to start the script before it counts as failed. */
  connectTimeoutMs?: number;
  /** How long stop() waits after closing stdin before SIGTERM, and after it before SIGKILL. */
  stopGraceMs?: number;
  random?: () => number;
  now?: () => Date;
  masterAvailable?: (socket: string) => Promise<boolean>;
}

export interface HostWatcherOptions extends ScriptSessionOptions {
  /** How often the host is re-read whatever its monitors say; 0: never. */
  resyncMs: number;
  onState(state: HostState): void;
}

/** How a session names itself in its logs and errors. */
export interface SessionNames {
  /** Prefix of the log events: `${event}.connected`, `${event}.disconnected`, ... */
  event: string;
  /** The session, in messages: "watcher stopped". */
  noun: string;
  /** The script, in messages: "the watch script did not start within 50 ms". */
  script: string;
  /** The log message once the script runs. */
  connected: string;
  /** The log message for a host whose connection cannot be made. */
  notWatched: string;
}

const WATCH_NAMES: SessionNames = {
  event: 'watch',
  noun: 'watcher',
  script: 'watch script',
  connected: 'watching host',
  notWatched: 'host not watched',
};

/** The longest state line accepted: a host with a huge ruleset still fits. */
const MAX_LINE_BYTES = 64 * 1024 * 1024;
const STDERR_TAIL_BYTES = 2048;

interface Attempt {
  child: WatchChild;
  /** ssh's (and the script's) stderr since the script started, or since the attempt did. */
  stderr: TailBuffer;
  connected: boolean;
  timedOut: boolean;
  /** Settles when the process has exited and its output has been read. */
  done: Promise<WatchExit>;
}

/**
 * The life of one long-lived script on one host: one process (ssh, or python for a local
 * host) that gets the script as its first stdin line, says hello, then prints JSON lines until
 * its stdin ends. Handles the start, the hello timeout, reconnects with exponential backoff,
 * the stop (stdin closed, then SIGTERM, then SIGKILL) and the status; a subclass gives
 * meaning to the lines after hello (HostWatcher, the failover prober).
 */
export abstract class ScriptSession<O extends ScriptSessionOptions = ScriptSessionOptions> {
  private current: Attempt | null = null;
  private stopping = false;
  private started = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private helloTimer: NodeJS.Timeout | null = null;
  private healthyTimer: NodeJS.Timeout | null = null;
  private connecting: Promise<void> | null = null;
  private state: WatchStatus;
  private readonly backoff: BackoffPolicy;
  private readonly spawn: WatchSpawner;
  protected readonly now: () => Date;

  protected constructor(
    protected readonly options: O,
    private readonly names: SessionNames,
  ) {
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.spawn = options.spawn ?? spawnWatchProcess;
    this.now = options.now ?? (() => new Date());
    this.state = { state: 'connecting', error: null, since: this.now() };
  }

  get host(): string {
    return this.options.host;
  }

  get status(): WatchStatus {
    return { ...this.state };
  }

  /** The pid of the current ssh (or python) process, if one runs. */
  get pid(): number | undefined {
    return this.current?.child.pid;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    const { connection } = this.options;
    if (!connection.watched) {
      this.setStatus('not_watched', connection.reason, true);
      this.options.logger.info(
        { event: `${this.names.event}.not_watched`, host: this.host, reason: connection.reason },
        this.names.notWatched,
      );
      return;
    }
    this.setStatus('connecting', null, true);
    this.connect(connection.target);
  }

  /** Ends the process (stdin closed first, so the script ends its monitors) and waits for it. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.clearTimers();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await this.connecting;
    const attempt = this.current;
    if (!attempt) return;
    const grace = this.options.stopGraceMs ?? 2000;
    const within = (ms: number) =>
      Promise.race([
        attempt.done.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref()),
      ]);
    attempt.child.stdin.end();
    if (!(await within(grace))) {
      attempt.child.kill('SIGTERM');
      if (!(await within(grace))) attempt.child.kill('SIGKILL');
    }
    await attempt.done;
    this.options.logger.info(
      { event: `${this.names.event}.stopped`, host: this.host },
      `${this.names.noun} stopped`,
    );
  }

  /** A line of the current process other than its hello. */
  protected abstract onMessage(msg: Record<string, unknown>): void;

  /** Called after each hello (the status is `watching`): the script now reads its stdin. */
  protected onConnected(_hello: Record<string, unknown>): void {}

  /** The process ended or is being stopped: undo what onConnected set up. */
  protected onDisconnected(): void {}

  /** What the hello says worth logging, besides the python version. */
  protected helloFields(_hello: Record<string, unknown>): Record<string, unknown> {
    return {};
  }

  /**
   * Writes one line to the running script; false when none has said hello yet (nothing is
   * written before the hello: see launch), so the caller sends it again from onConnected.
   */
  protected send(line: string): boolean {
    const attempt = this.current;
    if (this.stopping || !attempt?.connected) return false;
    attempt.child.stdin.write(`${line}\n`);
    return true;
  }

  private connect(target: WatchTarget): void {
    this.retryTimer = null;
    if (this.stopping) return;
    const run = async () => {
      try {
        const script = await this.options.script();
        const exists = this.options.masterAvailable ?? isSocket;
        const available = target.masterSocket !== null && (await exists(target.masterSocket));
        if (this.stopping) return;
        const cmd = watchCommand(target, available);
        this.launch(cmd.file, cmd.args, script, target, cmd.viaMaster);
      } catch (err) {
        this.failed(`cannot start the ${this.names.noun}: ${(err as Error).message}`, target);
      }
    };
    this.connecting = run().finally(() => {
      this.connecting = null;
    });
  }

  private launch(
    file: string,
    args: string[],
    script: string,
    target: WatchTarget,
    viaMaster: boolean,
  ): void {
    const child = this.spawn(file, args);
    // The script reads its first line with a buffered reader: nothing else is written until
    // it has said hello, so nothing past that line can be swallowed by the buffer.
    child.stdin.on('error', () => undefined);
    child.stdin.write(`${Buffer.from(script, 'utf8').toString('base64')}\n`);
    const attempt: Attempt = {
      child,
      stderr: new TailBuffer(STDERR_TAIL_BYTES),
      connected: false,
      timedOut: false,
      done: null as never,
    };
    const out = eachLine(child.stdout, MAX_LINE_BYTES, (line) => {
      if (line.cut) {
        this.options.logger.warn(
          { event: `${this.names.event}.line_too_long`, host: this.host, bytes: line.bytes },
          `${this.names.event} line over the limit ignored`,
        );
        return;
      }
      this.onLine(attempt, line.text, target, viaMaster);
    });
    const err = eachLine(child.stderr, 64 * 1024, (line) => attempt.stderr.push(line.text));
    attempt.done = child.exited.then(async (exit) => {
      // Output already written still counts; a stream a stray grandchild holds open does not
      // hold the exit up for long.
      await Promise.race([
        Promise.all([out, err]),
        new Promise((resolve) => setTimeout(resolve, 1000).unref()),
      ]);
      return exit;
    });
    this.current = attempt;
    const connectTimeoutMs = this.options.connectTimeoutMs ?? 30_000;
    this.helloTimer = setTimeout(() => {
      attempt.timedOut = true;
      this.options.logger.warn(
        { event: `${this.names.event}.connect_timeout`, host: this.host },
        `${this.names.script} did not start in time`,
      );
      child.kill('SIGTERM');
    }, connectTimeoutMs);
    void attempt.done.then((exit) => this.onExit(attempt, exit, target));
  }

  private onLine(attempt: Attempt, text: string, target: WatchTarget, viaMaster: boolean): void {
    if (this.stopping || attempt !== this.current || text.trim() === '') return;
    let msg: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(text);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new Error('not an object');
      }
      msg = parsed as Record<string, unknown>;
    } catch (err) {
      this.options.logger.warn(
        {
          event: `${this.names.event}.bad_line`,
          host: this.host,
          bytes: Buffer.byteLength(text),
          error: (err as Error).message,
        },
        `${this.names.event} line is not JSON; ignored`,
      );
      return;
    }
    if (msg.type === 'hello') this.connected(attempt, msg, target, viaMaster);
    else this.onMessage(msg);
  }

  private connected(
    attempt: Attempt,
    hello: Record<string, unknown>,
    target: WatchTarget,
    viaMaster: boolean,
  ): void {
    if (attempt.connected) return;
    attempt.connected = true;
    // Warnings of the login (a host key added) say nothing about a later drop.
    attempt.stderr = new TailBuffer(STDERR_TAIL_BYTES);
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    this.options.logger.info(
      {
        event: `${this.names.event}.connected`,
        host: this.host,
        kind: target.kind,
        destination: target.destination,
        via_master: viaMaster,
        python: typeof hello.python === 'string' ? hello.python : null,
        ...this.helloFields(hello),
      },
      this.names.connected,
    );
    this.setStatus('watching', null);
    this.healthyTimer = setTimeout(() => {
      this.failures = 0;
    }, this.backoff.healthyMs);
    this.onConnected(hello);
  }

  private onExit(attempt: Attempt, exit: WatchExit, target: WatchTarget): void {
    if (attempt !== this.current) return;
    this.clearTimers();
    if (this.stopping) return;
    this.current = null;
    const tail = attempt.stderr.text().trim().split('\n').slice(-5).join('\n').trim();
    const how =
      exit.notStarted ??
      (exit.signal ? `ended by ${exit.signal}` : `exited with code ${exit.exitCode}`);
    const error = attempt.timedOut
      ? `the ${this.names.script} did not start within ${this.options.connectTimeoutMs ?? 30_000} ms` +
        (tail ? `: ${tail}` : '')
      : tail || how;
    this.failed(error, target);
  }

  private failed(error: string, target: WatchTarget): void {
    if (this.stopping) return;
    const delay = backoffDelay(this.failures, this.backoff, this.options.random ?? Math.random);
    this.failures++;
    this.options.logger.warn(
      { event: `${this.names.event}.disconnected`, host: this.host, error, retry_in_ms: delay },
      `${this.names.event} connection down; retrying`,
    );
    this.setStatus('unreachable', error);
    this.retryTimer = setTimeout(() => this.connect(target), delay);
  }

  private clearTimers(): void {
    for (const t of [this.helloTimer, this.healthyTimer]) if (t) clearTimeout(t);
    this.helloTimer = this.healthyTimer = null;
    this.onDisconnected();
  }

  protected setStatus(state: WatchState, error: string | null, force = false): void {
    if (!force && state === this.state.state && error === this.state.error) return;
    const since = state === this.state.state && !force ? this.state.since : this.now();
    this.state = { state, error, since };
    try {
      this.options.onStatus({ ...this.state });
    } catch (err) {
      this.options.logger.error(
        {
          event: `${this.names.event}.on_status_failed`,
          host: this.host,
          error: (err as Error).message,
        },
        'status callback failed',
      );
    }
  }
}

/**
 * One host's long-lived watcher: remote-watch.py in a ScriptSession, whose lines become
 * states. The host's state is only ever what a whole, successful re-read printed: a failed
 * read, a broken line or a dropped connection emits no state, only a status.
 */
export class HostWatcher extends ScriptSession<HostWatcherOptions> {
  private resyncTimer: NodeJS.Timeout | null = null;

  constructor(options: HostWatcherOptions) {
    super(options, WATCH_NAMES);
  }

  protected override helloFields(hello: Record<string, unknown>): Record<string, unknown> {
    return { monitors: Array.isArray(hello.monitors) ? hello.monitors : [] };
  }

  protected override onConnected(): void {
    if (this.options.resyncMs > 0) {
      this.resyncTimer = setInterval(() => this.send('resync'), this.options.resyncMs);
    }
  }

  protected override onDisconnected(): void {
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.resyncTimer = null;
  }

  protected onMessage(msg: Record<string, unknown>): void {
    if (msg.type === 'state') {
      if (!Array.isArray(msg.links) || !Array.isArray(msg.routes)) {
        this.options.logger.warn(
          { event: 'watch.bad_line', host: this.host, error: 'state without links or routes' },
          'watch state line incomplete; ignored',
        );
        return;
      }
      const state = stateFromModuleData(msg, null, this.now());
      this.setStatus('watching', null);
      try {
        this.options.onState(state);
      } catch (err) {
        this.options.logger.error(
          { event: 'watch.on_state_failed', host: this.host, error: (err as Error).message },
          'state callback failed',
        );
      }
    } else if (msg.type === 'error') {
      const error = typeof msg.error === 'string' ? msg.error : 'read failed';
      this.options.logger.warn(
        { event: 'watch.read_failed', host: this.host, error },
        'host re-read failed; no state emitted',
      );
      this.setStatus('watching', error);
    }
  }
}
