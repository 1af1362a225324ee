import type { Config } from '../config.ts';
import type { InventorySource } from '../hosts/inventory-source.ts';
import type { Logger } from '../logger.ts';
import type { HostFeed } from './host-feed.ts';
import type { WatchInfo } from './host-topic.ts';
import type { WatchLeases } from './watch-leases.ts';
import type { WatchStatus } from './watch/host-watcher.ts';
import { HostWatchers } from './watch/host-watchers.ts';

/** Leases are renewed this often and last LEASE_TTL_MS: a dead replica's hosts move within it. */
const LEASE_RENEW_MS = 5_000;
export const WATCH_LEASE_TTL_MS = 15_000;

const info = (s: WatchStatus): WatchInfo => ({
  state: s.state,
  error: s.error,
  since: s.since.toISOString(),
});

/**
 * WATCH_HOSTS: this replica watches the hosts whose lease it holds, one watcher each, and
 * feeds what they read to the host topics. A host that cannot be watched (its connection
 * type) is gathered with Ansible every STATE_RESYNC_S instead.
 */
export class HostWatching {
  private watchers: HostWatchers | null = null;
  private timer: NodeJS.Timeout | null = null;
  private held = new Set<string>();
  private ticking: Promise<void> = Promise.resolve();
  private readonly lastGather = new Map<string, number>();
  private stopped = false;

  constructor(
    private readonly config: Pick<
      Config,
      'watchHosts' | 'stateResyncMs' | 'playbooksDir' | 'hostPython'
    >,
    private readonly deps: {
      inventory: InventorySource;
      leases: WatchLeases;
      feed: HostFeed;
      /** An Ansible gather of one host (for hosts that cannot be watched). */
      gather(host: string): Promise<unknown>;
      mastersDir(): Promise<string | null>;
      logger: Logger;
    },
  ) {}

  async start(): Promise<void> {
    if (!this.config.watchHosts) return;
    this.watchers = new HostWatchers({
      logger: this.deps.logger,
      resyncMs: this.config.stateResyncMs,
      mastersDir: (await this.deps.mastersDir()) ?? undefined,
      defaultPython: this.config.hostPython.startsWith('/') ? this.config.hostPython : undefined,
      playbooksDir: this.config.playbooksDir,
      onState: (host, state) => {
        const s = this.watchers?.status(host);
        void this.deps.feed.observed(host, state, s ? info(s) : info(WATCHING_NOW()));
      },
      onStatus: (host, status) => void this.deps.feed.watchChanged(host, info(status)),
    });
    await this.tick();
    this.timer = setInterval(() => {
      this.ticking = this.ticking.then(() => this.tick());
    }, LEASE_RENEW_MS);
    this.timer.unref();
  }

  /** Hosts this replica watches now. */
  get watching(): string[] {
    return [...this.held].sort();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking;
    await this.watchers?.stop();
    await this.deps.leases.release([...this.held]).catch(() => undefined);
    this.held.clear();
  }

  private async tick(): Promise<void> {
    if (this.stopped || !this.watchers) return;
    try {
      const inv = await this.deps.inventory.current();
      const held = await this.deps.leases.claim([...inv.hosts.keys()]);
      const gone = [...this.held].filter((h) => !inv.hosts.has(h));
      await this.deps.leases.release(gone);
      for (const h of held) {
        if (!this.held.has(h)) {
          this.deps.logger.info({ event: 'watch.lease_taken', host: h }, 'watching a host');
        }
      }
      this.held = held;
      await this.watchers.set([...inv.hosts.values()].filter((h) => held.has(h.name)));
      this.gatherUnwatched();
    } catch (err) {
      // Leases lapse on their own: another replica takes the hosts over meanwhile.
      this.deps.logger.warn({ event: 'watch.tick_failed', err }, 'could not renew watch leases');
    }
  }

  private gatherUnwatched(): void {
    const now = Date.now();
    for (const h of this.held) {
      if (this.watchers?.status(h)?.state !== 'not_watched') continue;
      if (now - (this.lastGather.get(h) ?? 0) < this.config.stateResyncMs) continue;
      this.lastGather.set(h, now);
      this.deps
        .gather(h)
        .catch((err: unknown) =>
          this.deps.logger.info(
            { event: 'watch.gather_failed', host: h, err: (err as Error).message },
            'gather of an unwatched host failed',
          ),
        );
    }
  }
}

const WATCHING_NOW = (): WatchStatus => ({ state: 'watching', error: null, since: new Date() });
