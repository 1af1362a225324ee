/** How long a write may wait for its apply before it is no longer tracked. */
const MAX_AGE_MS = 6 * 60 * 60 * 1000;
/** Writes tracked per host; later ones wait no longer than the first, so they add nothing. */
const MAX_PER_HOST = 1_000;
/** Hosts tracked at once; past this, the oldest entries are dropped. */
const MAX_HOSTS = 20_000;

/** One host's carried generation as its run ended. */
export interface HostApplied {
  host: string;
  gen: number;
  /** The apply failed: nothing is observed, the writes wait for the next one. */
  failed: boolean;
  /**
   * A periodic convergence owed nothing new: whatever writes are still tracked up to `gen`
   * were applied by another replica, so they are dropped, not observed.
   */
  converging: boolean;
}

/**
 * Write-to-kernel lag, as one process can see it: a host's write is timed from the commit of
 * its transaction (host-work generation `gen`) to the end of this process's successful run
 * that carried that generation. Writes another replica applies are dropped once this process
 * learns of it (a converging claim), or after MAX_AGE_MS; memory is bounded whatever happens.
 */
export class WriteLag {
  /** Per host, [generation, committed at] in ascending generation order. */
  private readonly pending = new Map<string, [number, number][]>();

  constructor(
    private readonly observe: (seconds: number) => void,
    private readonly now: () => number = Date.now,
  ) {}

  committed(ticket: Iterable<[string, number]>): void {
    const at = this.now();
    for (const [host, gen] of ticket) {
      let list = this.pending.get(host);
      if (!list) {
        if (this.pending.size >= MAX_HOSTS) this.prune(at, true);
        list = [];
        this.pending.set(host, list);
      }
      if (list.length < MAX_PER_HOST) list.push([gen, at]);
    }
  }

  applied(hosts: Iterable<HostApplied>): void {
    const at = this.now();
    for (const h of hosts) {
      if (h.failed) continue;
      const list = this.pending.get(h.host);
      if (!list) continue;
      let carried = 0;
      while (carried < list.length && list[carried]![0] <= h.gen) carried++;
      if (!h.converging) {
        for (let i = 0; i < carried; i++) {
          const lagMs = at - list[i]![1];
          if (lagMs <= MAX_AGE_MS) this.observe(Math.max(0, lagMs) / 1000);
        }
      }
      list.splice(0, carried);
      if (list.length === 0) this.pending.delete(h.host);
    }
  }

  /** Writes tracked now (tests). */
  get size(): number {
    let n = 0;
    for (const list of this.pending.values()) n += list.length;
    return n;
  }

  private prune(at: number, evictOldest: boolean): void {
    for (const [host, list] of this.pending) {
      while (list.length > 0 && at - list[0]![1] > MAX_AGE_MS) list.shift();
      if (list.length === 0) this.pending.delete(host);
    }
    // Insertion order is first-write order: the first host is the one waiting longest.
    if (evictOldest && this.pending.size >= MAX_HOSTS) {
      const first = this.pending.keys().next();
      if (!first.done) this.pending.delete(first.value);
    }
  }
}
