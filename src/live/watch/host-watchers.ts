import type { HostState } from '../../hosts/host-state.ts';
import type { InventoryHost } from '../../hosts/inventory.ts';
import type { Logger } from '../../logger.ts';
import { HostWatcher, type BackoffPolicy, type WatchStatus } from './host-watcher.ts';
import {
  loadWatchScript,
  watchConnection,
  type WatchConnection,
  type WatchSpawner,
} from './watch-connection.ts';

export interface HostWatchersOptions {
  logger: Logger;
  /** STATE_RESYNC_S in ms: a full re-read of every host this often; 0: only on changes. */
  resyncMs: number;
  /** The runner's persistent SSH masters directory, to ride a master when one is up. */
  mastersDir?: string;
  /** The interpreter for hosts whose inventory names none (HOST_PYTHON). */
  defaultPython?: string;
  /** Where module_utils/routeplane_kernel.py is (PLAYBOOKS_DIR); the repo's by default. */
  playbooksDir?: string;
  onState(host: string, state: HostState): void;
  onStatus(host: string, status: WatchStatus): void;
  spawn?: WatchSpawner;
  backoff?: Partial<BackoffPolicy>;
}

interface Entry {
  watcher: HostWatcher;
  /** The resolved connection as text: a change of any setting means a new watcher. */
  key: string;
}

/**
 * The watchers of a fleet: one per inventory host, started, stopped and restarted as the
 * inventory changes. set() calls are applied one after the other, in order.
 */
export class HostWatchers {
  private readonly entries = new Map<string, Entry>();
  private queue: Promise<void> = Promise.resolve();
  private script: Promise<string> | null = null;
  private stopped = false;

  constructor(private readonly options: HostWatchersOptions) {}

  /**
   * Watches exactly `hosts`: starts the new, stops the gone, restarts those whose connection
   * settings changed. Resolves once the stopped watchers' processes have ended.
   */
  set(hosts: InventoryHost[]): Promise<void> {
    return this.enqueue(() => this.apply(hosts));
  }

  /** Stops every watcher and waits for their processes; set() is a no-op afterwards. */
  stop(): Promise<void> {
    return this.enqueue(async () => {
      this.stopped = true;
      const all = [...this.entries.values()];
      this.entries.clear();
      await Promise.all(all.map((e) => e.watcher.stop()));
    });
  }

  /** The host's watch status; undefined for a host not in the last set(). */
  status(host: string): WatchStatus | undefined {
    return this.entries.get(host)?.watcher.status;
  }

  /** The hosts being watched (or known as not watched), sorted. */
  hosts(): string[] {
    return [...this.entries.keys()].sort();
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.queue.then(step);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private connectionOf(host: InventoryHost): WatchConnection {
    return watchConnection(host, {
      mastersDir: this.options.mastersDir,
      defaultPython: this.options.defaultPython,
    });
  }

  private loadScript(): Promise<string> {
    this.script ??= loadWatchScript({ playbooksDir: this.options.playbooksDir });
    // A failed read is tried again on the next connection attempt.
    this.script.catch(() => {
      this.script = null;
    });
    return this.script;
  }

  private async apply(hosts: InventoryHost[]): Promise<void> {
    if (this.stopped) return;
    const wanted = new Map(hosts.map((h) => [h.name, h]));
    const stopping: Promise<void>[] = [];
    for (const [name, entry] of this.entries) {
      const host = wanted.get(name);
      if (host && JSON.stringify(this.connectionOf(host)) === entry.key) continue;
      this.entries.delete(name);
      this.options.logger.info(
        { event: host ? 'watch.restart' : 'watch.host_gone', host: name },
        host ? 'connection settings changed; watcher restarted' : 'host left the inventory',
      );
      stopping.push(entry.watcher.stop());
    }
    // The old process ends before the new one starts: never two watchers of one host.
    await Promise.all(stopping);
    for (const host of hosts) {
      if (this.entries.has(host.name)) continue;
      const connection = this.connectionOf(host);
      const watcher = new HostWatcher({
        host: host.name,
        connection,
        logger: this.options.logger,
        resyncMs: this.options.resyncMs,
        script: () => this.loadScript(),
        onState: (state) => this.options.onState(host.name, state),
        onStatus: (status) => this.options.onStatus(host.name, status),
        spawn: this.options.spawn,
        backoff: this.options.backoff,
      });
      this.entries.set(host.name, { watcher, key: JSON.stringify(connection) });
      watcher.start();
    }
  }
}
