import type { Logger } from '../logger.ts';
import type { RunsStore } from './runs-store.ts';
import type { Run, RunOutcome } from './types.ts';

/** Waits between attempts to record a run's end while the database fails (about 16 s). */
export const FINISH_BACKOFF_MS: readonly number[] = [100, 200, 400, 800, 1600, 3200, 5000, 5000];
/** After that, how often the ends still unrecorded are tried again, in the background. */
export const FINISH_RETRY_EVERY_MS = 30_000;

type FinishStore = Pick<RunsStore, 'finish' | 'get'>;

/** The run as it ended, when the database cannot say so yet. */
function asEnded(run: Run, outcome: RunOutcome): Run {
  return {
    ...run,
    status: outcome.status,
    rc: outcome.rc,
    summary: outcome.summary,
    results: outcome.results,
    error: outcome.error,
    log: outcome.log,
    finishedAt: new Date(),
  };
}

/**
 * Records a run's end through database errors, so no run stays `running` while its process
 * is long gone: bounded backoff first (the caller waits, then gets the stored row), then the
 * caller goes on with the run as it ended (its hooks run, its waiters answer) while the
 * record is retried in the background until it holds or the service stops. A process that
 * dies with an end unrecorded leaves it to the next start-up, which interrupts a dead owner's
 * runs.
 */
export class FinishRecorder {
  backoffMs: readonly number[] = FINISH_BACKOFF_MS;
  retryEveryMs = FINISH_RETRY_EVERY_MS;
  private readonly pending = new Map<string, () => Promise<boolean>>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly store: FinishStore,
    private readonly logger: Logger,
  ) {}

  async record(run: Run, outcome: RunOutcome): Promise<Run> {
    for (let attempt = 0; ; attempt++) {
      try {
        const row = (await this.store.finish(run.id, outcome)) ?? (await this.store.get(run.id));
        return row ?? asEnded(run, outcome);
      } catch (err) {
        const wait = this.backoffMs[attempt];
        if (wait === undefined) {
          this.logger.error(
            { event: 'run.finish_deferred', run_id: run.id, attempts: attempt + 1, err },
            'could not record the end of a run; retrying in the background',
          );
          break;
        }
        this.logger.warn(
          { event: 'run.finish_retry', run_id: run.id, attempt: attempt + 1, err },
          'could not record the end of a run; retrying',
        );
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    this.pending.set(run.id, async () => {
      try {
        await this.store.finish(run.id, outcome);
        this.logger.info(
          { event: 'run.finish_recorded', run_id: run.id },
          'end of run recorded after retries',
        );
        return true;
      } catch {
        return false;
      }
    });
    this.schedule();
    return asEnded(run, outcome);
  }

  /** Ends not recorded yet. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Tries every unrecorded end once more now. */
  async retryPending(): Promise<void> {
    for (const [id, attempt] of [...this.pending]) {
      if (await attempt()) this.pending.delete(id);
    }
  }

  /** One last try at shutdown; no timer is left behind. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.retryPending();
  }

  private schedule(): void {
    if (this.timer || this.closed || this.pending.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.retryPending().then(() => this.schedule());
    }, this.retryEveryMs);
    // A retry must never keep a process (or a test worker) alive on its own.
    this.timer.unref();
  }
}
