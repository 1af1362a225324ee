import type { ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';

// The benchmarks that drive clients or commands from a child process of their own (so that
// its work does not stall the server's event loop in the benchmark's process) talk to it over
// IPC: each request carries an id, its answer the same id, or an error.

/** Epoch ms with sub-ms resolution (ip -ts prints wall-clock time with microseconds). */
export const epochNow = () => performance.timeOrigin + performance.now();

/** An answer from the child: to request `id`, or an error. */
export interface Answer {
  id: number;
  error?: string;
  [k: string]: unknown;
}

/** Request/answer over IPC with a child process. */
export class ChildPeer {
  private next = 1;
  private readonly waiting = new Map<number, (m: Answer) => void>();

  constructor(
    readonly child: ChildProcess,
    /** What the child is, for the error when it ends with requests unanswered. */
    what: string,
  ) {
    child.on('message', (m: Answer) => {
      this.waiting.get(m.id)?.(m);
      this.waiting.delete(m.id);
    });
    child.on('exit', (code, signal) => {
      for (const w of this.waiting.values())
        w({ id: 0, error: `${what} ended (${signal ?? code})` });
      this.waiting.clear();
    });
  }

  ask<T extends Answer>(msg: Record<string, unknown>): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, (m) => (m.error ? reject(new Error(m.error)) : resolve(m as T)));
      this.child.send({ ...msg, id });
    });
  }

  /**
   * The child's clock minus ours, from the round trip with the least delay (the child answers
   * `{ cmd: 'clock' }` with its `epochNow()` as `now`).
   */
  async offset(samples = 15): Promise<{ offset: number; rtt: number }> {
    let best = { offset: 0, rtt: Infinity };
    for (let i = 0; i < samples; i++) {
      const t0 = epochNow();
      const { now } = await this.ask<Answer & { now: number }>({ cmd: 'clock' });
      const t1 = epochNow();
      if (t1 - t0 < best.rtt) best = { offset: now - (t0 + t1) / 2, rtt: t1 - t0 };
    }
    return best;
  }
}
