import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';

/**
 * A kind's scheduled transitions. `fireDue` claims and fires what is due (SKIP LOCKED) and, in
 * the same transaction, records the apply each fired transition owes (its host's work row), so
 * whichever replica survives applies it.
 */
export interface ScheduleSource {
  readonly name: string;
  /** `dueAt`: the time the transition was due (create_at or delete_at), for its lag. */
  fireDue(limit: number): Promise<{ host: string; dueAt?: Date | null }[]>;
  nextDueAt(): Promise<Date | null>;
}

const CLAIM_BATCH = 500;

type SchedulerConfig = Pick<Config, 'schedulerMaxSleepMs'>;

/**
 * Fires lifecycle transitions at their timestamps: a single timer aimed at the next due time,
 * re-aimed whenever a schedule changes (wake). The sleep is capped so that a transition
 * another replica scheduled is still fired if that replica has gone away.
 */
export class Scheduler {
  private timer: NodeJS.Timeout | null = null;
  private firing: Promise<void> | null = null;
  private again = false;
  private stopped = true;

  constructor(
    private readonly config: SchedulerConfig,
    private readonly sources: ScheduleSource[],
    private readonly onFired: () => void,
    private readonly logger: Logger,
    /** Told of each batch fired, with the due times, as soon as it committed (metrics). */
    private readonly onFiredDue?: (kind: string, dueAts: (Date | null | undefined)[]) => void,
  ) {}

  /** Fires everything overdue at once (after a restart), then follows the schedule. */
  start(): Promise<void> {
    this.stopped = false;
    return this.fire();
  }

  /** A schedule changed: re-aim the timer. */
  wake(): void {
    if (this.stopped) return;
    void this.fire();
  }

  private fire(): Promise<void> {
    if (this.firing) {
      this.again = true;
      return this.firing;
    }
    this.firing = (async () => {
      do {
        this.again = false;
        try {
          for (const source of this.sources) {
            let fired: { host: string; dueAt?: Date | null }[];
            do {
              fired = await source.fireDue(CLAIM_BATCH);
              if (fired.length > 0) {
                this.onFiredDue?.(
                  source.name,
                  fired.map((f) => f.dueAt),
                );
                this.logger.info(
                  { event: 'scheduler.fired', kind: source.name, count: fired.length },
                  'scheduled transitions fired',
                );
                this.onFired();
              }
            } while (fired.length === CLAIM_BATCH && !this.stopped);
          }
          await this.arm();
        } catch (err) {
          this.logger.error({ event: 'scheduler.failed', err }, 'scheduler pass failed');
          this.arm(1000);
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.firing = null;
    });
    return this.firing;
  }

  private async arm(fixedMs?: number): Promise<void> {
    if (this.stopped) return;
    let delay = fixedMs;
    if (delay === undefined) {
      const dues = await Promise.all(this.sources.map((s) => s.nextDueAt()));
      const next = dues.reduce<Date | null>((a, b) => (b && (!a || b < a) ? b : a), null);
      delay = next ? Math.max(0, next.getTime() - Date.now()) : this.config.schedulerMaxSleepMs;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(
      () => {
        this.timer = null;
        void this.fire();
      },
      Math.min(delay, this.config.schedulerMaxSleepMs),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.firing;
  }
}
