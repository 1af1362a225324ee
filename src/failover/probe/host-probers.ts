import type { InventoryHost } from '../../hosts/inventory.ts';
import type { Logger } from '../../logger.ts';
import type { BackoffPolicy, WatchStatus } from '../../live/watch/host-watcher.ts';
import { ScriptSessions } from '../../live/watch/script-sessions.ts';
import type { WatchSpawner } from '../../live/watch/watch-connection.ts';
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

/**
 * The probers of every checking point this replica holds: one session per point, started,
 * stopped and restarted as the points change (ScriptSessions); a point whose checks alone
 * changed keeps its session and gets the new set. set() calls are applied in order.
 *
 * A host the watcher cannot reach (probeConnection → watched: false) gets a session that
 * never starts a process and reports `not_watched`: its checks belong on the controller.
 */
export class HostProbers {
  private readonly sessions: ScriptSessions<ProbePoint, ProbeSession>;

  constructor(options: HostProbersOptions) {
    this.sessions = new ScriptSessions({
      nameOf: (p) => p.point,
      connectionOf: (p) =>
        probeConnection(p.host, {
          mastersDir: options.mastersDir,
          defaultPython: options.defaultPython,
        }),
      loadScript: () => loadProbeScript({ playbooksDir: options.playbooksDir }),
      create: (p, connection, script) =>
        new ProbeSession({
          point: p.point,
          connection,
          logger: options.logger,
          script,
          onResult: (r) => options.onResult(r),
          onStatus: (status) => options.onStatus(p.point, status),
          spawn: options.spawn,
          backoff: options.backoff,
        }),
      update: (session, p) => session.setChecks(p.checks),
      logger: options.logger,
      events: { restart: 'probe.restart', gone: 'probe.point_gone' },
      goneMessage: 'checking point no longer held',
    });
  }

  /**
   * Probes exactly `points` (a point named twice: the last one counts). Resolves once the
   * processes of stopped or restarted points have ended.
   */
  set(points: ProbePoint[]): Promise<void> {
    return this.sessions.set(points);
  }

  /** Stops every session and waits for their processes; set() is a no-op afterwards. */
  stop(): Promise<void> {
    return this.sessions.stop();
  }

  /** The point's prober status; undefined for a point not in the last set(). */
  status(point: string): WatchStatus | undefined {
    return this.sessions.status(point);
  }

  /** The points with a session, sorted. */
  points(): string[] {
    return this.sessions.names();
  }
}
