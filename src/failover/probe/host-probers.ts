import type { InventoryHost } from '../../hosts/inventory.ts';
import type { Logger } from '../../logger.ts';
import type { BackoffPolicy, WatchStatus } from '../../live/watch/host-watcher.ts';
import type { WatchConnection, WatchSpawner } from '../../live/watch/watch-connection.ts';
import { loadProbeScript, probeConnection } from './probe-connection.ts';
import { ProbeSession, type ProbeCheck, type ProbeResult } from './probe-session.ts';

export interface ProbePoint {
  point: string;
  /** The host the checks run on; null: the controller, which runs them itself. */
  host: InventoryHost | null;
  checks: ProbeCheck[];
}

export interface HostProbersOptions {
  logger: Logger;
  /** The runner's persistent SSH masters directory: a prober rides a master when one is up. */
  mastersDir?: string;
  /** The interpreter for hosts whose inventory names none, and the controller's (HOST_PYTHON). */
  defaultPython?: string;
  /** Where probe/routeplane_probe.py is (PLAYBOOKS_DIR); the repo's by default. */
  playbooksDir?: string;
  onResult(result: ProbeResult): void;
  onStatus(point: string, status: WatchStatus): void;
  spawn?: WatchSpawner;
  backoff?: Partial<BackoffPolicy>;
}

interface Entry {
  session: ProbeSession;
  /** The resolved connection as text: a change of any setting means a new session. */
  key: string;
}

/**
 * The probers of every checking point this replica holds: one session per point, started,
 * stopped and restarted as the points change; a point whose checks alone changed keeps its
 * session and gets the new set. set() calls are applied one after the other, in order.
 *
 * A host the watcher cannot reach (probeConnection → watched: false) gets a session that
 * never starts a process and reports `not_watched`: its checks belong on the controller.
 */
export class HostProbers {
  private readonly entries = new Map<string, Entry>();
  private queue: Promise<void> = Promise.resolve();
  private script: Promise<string> | null = null;
  private stopped = false;

  constructor(private readonly options: HostProbersOptions) {}

  /**
   * Probes exactly `points` (a point named twice: the last one counts). Resolves once the
   * processes of stopped or restarted points have ended.
   */
  set(points: ProbePoint[]): Promise<void> {
    return this.enqueue(() => this.apply(points));
  }

  /** Stops every session and waits for their processes; set() is a no-op afterwards. */
  stop(): Promise<void> {
    return this.enqueue(async () => {
      this.stopped = true;
      const all = [...this.entries.values()];
      this.entries.clear();
      await Promise.all(all.map((e) => e.session.stop()));
    });
  }

  /** The point's prober status; undefined for a point not in the last set(). */
  status(point: string): WatchStatus | undefined {
    return this.entries.get(point)?.session.status;
  }

  /** The points with a session, sorted. */
  points(): string[] {
    return [...this.entries.keys()].sort();
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.queue.then(step);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private connectionOf(host: InventoryHost | null): WatchConnection {
    return probeConnection(host, {
      mastersDir: this.options.mastersDir,
      defaultPython: this.options.defaultPython,
    });
  }

  private loadScript(): Promise<string> {
    this.script ??= loadProbeScript({ playbooksDir: this.options.playbooksDir });
    // A failed read is tried again on the next connection attempt.
    this.script.catch(() => {
      this.script = null;
    });
    return this.script;
  }

  private async apply(points: ProbePoint[]): Promise<void> {
    if (this.stopped) return;
    const wanted = new Map(points.map((p) => [p.point, p]));
    const stopping: Promise<void>[] = [];
    for (const [point, entry] of this.entries) {
      const p = wanted.get(point);
      if (p && JSON.stringify(this.connectionOf(p.host)) === entry.key) continue;
      this.entries.delete(point);
      this.options.logger.info(
        { event: p ? 'probe.restart' : 'probe.point_gone', host: point },
        p ? 'connection settings changed; prober restarted' : 'checking point no longer held',
      );
      stopping.push(entry.session.stop());
    }
    // The old process ends before the new one starts: never two probers of one point.
    await Promise.all(stopping);
    for (const p of wanted.values()) {
      const existing = this.entries.get(p.point);
      if (existing) {
        existing.session.setChecks(p.checks);
        continue;
      }
      const connection = this.connectionOf(p.host);
      const session = new ProbeSession({
        point: p.point,
        connection,
        logger: this.options.logger,
        script: () => this.loadScript(),
        onResult: (r) => this.options.onResult(r),
        onStatus: (status) => this.options.onStatus(p.point, status),
        spawn: this.options.spawn,
        backoff: this.options.backoff,
      });
      session.setChecks(p.checks);
      this.entries.set(p.point, { session, key: JSON.stringify(connection) });
      session.start();
    }
  }
}
