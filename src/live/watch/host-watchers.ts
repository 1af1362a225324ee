import type { HostState } from '../../hosts/host-state.ts';
import type { InventoryHost } from '../../hosts/inventory.ts';
import type { Logger } from '../../logger.ts';
import { HostWatcher, type BackoffPolicy, type WatchStatus } from './host-watcher.ts';
import { ScriptSessions } from './script-sessions.ts';
import { loadWatchScript, watchConnection, type WatchSpawner } from './watch-connection.ts';

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

/**
 * The watchers of a fleet: one per inventory host, started, stopped and restarted as the
 * inventory changes (ScriptSessions). set() calls are applied one after the other, in order.
 */
export class HostWatchers {
  private readonly sessions: ScriptSessions<InventoryHost, HostWatcher>;

  constructor(options: HostWatchersOptions) {
    this.sessions = new ScriptSessions({
      nameOf: (host) => host.name,
      connectionOf: (host) =>
        watchConnection(host, {
          mastersDir: options.mastersDir,
          defaultPython: options.defaultPython,
        }),
      loadScript: () => loadWatchScript({ playbooksDir: options.playbooksDir }),
      create: (host, connection, script) =>
        new HostWatcher({
          host: host.name,
          connection,
          logger: options.logger,
          resyncMs: options.resyncMs,
          script,
          onState: (state) => options.onState(host.name, state),
          onStatus: (status) => options.onStatus(host.name, status),
          spawn: options.spawn,
          backoff: options.backoff,
        }),
      logger: options.logger,
      events: { restart: 'watch.restart', gone: 'watch.host_gone' },
      goneMessage: 'host left the inventory',
    });
  }

  /**
   * Watches exactly `hosts`: starts the new, stops the gone, restarts those whose connection
   * settings changed. Resolves once the stopped watchers' processes have ended.
   */
  set(hosts: InventoryHost[]): Promise<void> {
    return this.sessions.set(hosts);
  }

  /** Stops every watcher and waits for their processes; set() is a no-op afterwards. */
  stop(): Promise<void> {
    return this.sessions.stop();
  }

  /** The host's watch status; undefined for a host not in the last set(). */
  status(host: string): WatchStatus | undefined {
    return this.sessions.status(host);
  }

  /** The hosts being watched (or known as not watched), sorted. */
  hosts(): string[] {
    return this.sessions.names();
  }
}
