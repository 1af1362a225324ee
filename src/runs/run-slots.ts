/**
 * A counting semaphore for MAX_CONCURRENT_RUNS: ansible-playbook costs about a second of CPU
 * per process, so the number running at once is bounded whatever the request rate. Waiters
 * with a lower priority number go first (FIFO within one priority): applies are writes, and a
 * storm of viewer refreshes must never keep them queued behind reads.
 */
export class RunSlots {
  private active = 0;
  private readonly waiting: { id: string; priority: number; grant: () => void }[] = [];

  constructor(private readonly max: number) {}

  acquire(id: string, priority = 0): Promise<void> {
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((grant) => {
      const at = this.waiting.findIndex((w) => w.priority > priority);
      const entry = { id, priority, grant };
      if (at < 0) this.waiting.push(entry);
      else this.waiting.splice(at, 0, entry);
    });
  }

  /** Drops a waiter that no longer wants a slot; false if it was not waiting. */
  withdraw(id: string): boolean {
    const i = this.waiting.findIndex((w) => w.id === id);
    if (i < 0) return false;
    this.waiting.splice(i, 1);
    return true;
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next.grant();
    else this.active--;
  }
}
