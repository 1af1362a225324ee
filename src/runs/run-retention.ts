import type { Logger } from '../logger.ts';
import type { RunsStore } from './runs-store.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
export const PRUNE_EVERY_MS = 60 * 60 * 1000;

/**
 * RUN_RETENTION_DAYS: finished runs older than that are deleted at start-up and then every
 * `everyMs` (hourly). The timer is unref'd and cleared by stop(), so it never keeps a process
 * or a test worker alive; replicas may prune concurrently (a delete of what is gone is a no-op).
 */
export class RunRetention {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;

  constructor(
    private readonly days: number,
    private readonly store: Pick<RunsStore, 'pruneFinishedBefore'>,
    private readonly logger: Logger,
    private readonly everyMs = PRUNE_EVERY_MS,
  ) {}

  /** Prunes once now; with a retention set, then periodically until stop(). */
  async start(): Promise<void> {
    if (this.days === 0) return;
    await this.pruneNow();
    this.schedule();
  }

  /** Deletes the finished runs older than the retention; how many. */
  async pruneNow(now = new Date()): Promise<number> {
    if (this.days === 0) return 0;
    this.running ??= (async () => {
      try {
        const n = await this.store.pruneFinishedBefore(
          new Date(now.getTime() - this.days * DAY_MS),
        );
        if (n > 0) {
          this.logger.info(
            { event: 'runs.pruned', count: n, retention_days: this.days },
            'finished runs past their retention deleted',
          );
        }
        return n;
      } catch (err) {
        this.logger.warn({ event: 'runs.prune_failed', err }, 'could not prune finished runs');
        return 0;
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void this.pruneNow().then(() => {
        if (this.timer) this.schedule();
      });
    }, this.everyMs);
    this.timer.unref();
  }
}
