/**
 * A counting semaphore for MAX_CONCURRENT_RUNS: ansible-playbook costs about a second of CPU
 * per process, so the number running at once is bounded whatever the request rate.
 */
export class RunSlots {
  private active = 0;
  private readonly waiting: { id: string; grant: () => void }[] = [];

  constructor(private readonly max: number) {}

  acquire(id: string): Promise<void> {
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push({ id, grant: resolve }));
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
