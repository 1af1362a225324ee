import { PassThrough } from 'node:stream';
import type { WatchChild, WatchExit } from '../../src/live/watch/watch-connection.ts';

/**
 * The process a script session (watcher, prober) talks to, in memory: what the session writes
 * to its stdin is kept, `send` is a line of the script's stdout, `exit` its end.
 */
export class FakeChild implements WatchChild {
  readonly pid = 4242;
  readonly stdin = new PassThrough();
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly signals: string[] = [];
  written = '';
  stdinEnded = false;
  readonly exited: Promise<WatchExit>;
  private resolveExit!: (e: WatchExit) => void;

  constructor(private readonly behaviour: { exitOnStdinEnd?: boolean; exitOnTerm?: boolean } = {}) {
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
    this.stdin.on('data', (d: Buffer) => (this.written += d.toString()));
    this.stdin.on('end', () => {
      this.stdinEnded = true;
      if (this.behaviour.exitOnStdinEnd ?? true) this.exit(0);
    });
  }

  /** The JSON lines written after the script's own (base64) line. */
  get lines(): unknown[] {
    return this.written
      .split('\n')
      .slice(1)
      .filter(Boolean)
      .map((l) => JSON.parse(l) as unknown);
  }

  send(line: unknown): void {
    this.stdout.write(typeof line === 'string' ? line : `${JSON.stringify(line)}\n`);
  }

  exit(exitCode: number | null, signal: string | null = null, stderr = ''): void {
    if (stderr) this.stderr.write(stderr);
    this.stdout.end();
    this.stderr.end();
    this.resolveExit({ exitCode, signal });
  }

  kill(signal: NodeJS.Signals): boolean {
    this.signals.push(signal);
    if (signal === 'SIGKILL' || (this.behaviour.exitOnTerm ?? true)) this.exit(null, signal);
    return true;
  }
}
