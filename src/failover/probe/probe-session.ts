import { isIP } from 'node:net';
import {
  ScriptSession,
  type ScriptSessionOptions,
  type SessionNames,
} from '../../live/watch/host-watcher.ts';

/** One health check a point runs: every intervalS, one probe that gives up after timeoutS. */
export interface ProbeCheck {
  id: string;
  type: 'icmp' | 'tcp';
  /** An IP address (an IPv6 link-local one may carry its %interface). */
  target: string;
  /** tcp only; null for icmp. */
  port: number | null;
  intervalS: number;
  timeoutS: number;
}

export interface ProbeResult {
  point: string;
  id: string;
  /** When routeplane read the result. */
  at: Date;
  /** `unavailable`: the point cannot run this kind of probe (no ICMP socket), not a failure. */
  outcome: 'ok' | 'fail' | 'unavailable';
  /** Why it failed or is unavailable; null when ok. */
  detail: string | null;
  rttMs: number | null;
}

/** What routeplane_probe.py accepts; the script checks again and refuses a whole bad set. */
export const MIN_INTERVAL_S = 0.2;
const MAX_ID_LENGTH = 200;

/** Why the prober would refuse this check, or null. */
export function probeCheckProblem(c: ProbeCheck): string | null {
  if (typeof c.id !== 'string' || c.id === '' || c.id.length > MAX_ID_LENGTH) {
    return `id must be a string of 1 to ${MAX_ID_LENGTH} characters`;
  }
  if (c.type !== 'icmp' && c.type !== 'tcp') return 'type must be icmp or tcp';
  if (typeof c.target !== 'string' || isIP(c.target) === 0) return 'target is not an IP address';
  if (c.type === 'tcp') {
    if (!Number.isInteger(c.port) || c.port! < 1 || c.port! > 65535) {
      return 'port must be an integer 1..65535';
    }
  } else if (c.port !== null && c.port !== undefined) {
    return 'an icmp check has no port';
  }
  if (!Number.isFinite(c.intervalS) || c.intervalS < MIN_INTERVAL_S) {
    return `interval must be at least ${MIN_INTERVAL_S} s`;
  }
  if (!Number.isFinite(c.timeoutS) || c.timeoutS <= 0 || c.timeoutS > c.intervalS) {
    return 'timeout must be > 0 and at most the interval';
  }
  return null;
}

export interface ProbeSessionOptions extends Omit<ScriptSessionOptions, 'host'> {
  /** The checking point: a host's name, or the controller's. */
  point: string;
  onResult(result: ProbeResult): void;
}

type Options = ScriptSessionOptions & Pick<ProbeSessionOptions, 'onResult'>;

const PROBE_NAMES: SessionNames = {
  event: 'probe',
  noun: 'prober',
  script: 'probe script',
  connected: 'prober running',
  notWatched: 'point cannot run a prober',
};

/**
 * One checking point's prober: routeplane_probe.py in a ScriptSession (the watcher's process
 * lifecycle, over the host's watch connection). The check set is sent after every hello, so a
 * reconnected prober runs what was last set. While the point is unreachable nothing is
 * reported for its checks: a lost session is not a failed gateway.
 */
export class ProbeSession extends ScriptSession<Options> {
  /** The check set as the script reads it; sent again on each hello. */
  private line = JSON.stringify({ checks: [] });
  private ids = new Set<string>();

  constructor(options: ProbeSessionOptions) {
    const { point, ...rest } = options;
    super({ ...rest, host: point }, PROBE_NAMES);
  }

  get point(): string {
    return this.host;
  }

  /**
   * Replaces the point's whole check set (unchanged checks keep their schedule in the
   * script). A check the prober would refuse is left out and logged, so one bad check never
   * costs the others their probes.
   */
  setChecks(checks: ProbeCheck[]): void {
    const good: ProbeCheck[] = [];
    const seen = new Set<string>();
    for (const c of checks) {
      const problem = seen.has(c.id) ? 'duplicate id' : probeCheckProblem(c);
      if (problem) {
        this.options.logger.warn(
          { event: 'probe.bad_check', host: this.point, check: c.id, error: problem },
          'check left out of the prober’s set',
        );
        continue;
      }
      seen.add(c.id);
      good.push(c);
    }
    const line = JSON.stringify({
      checks: good.map((c) => ({
        id: c.id,
        type: c.type,
        target: c.target,
        ...(c.type === 'tcp' ? { port: c.port } : {}),
        interval: c.intervalS,
        timeout: c.timeoutS,
      })),
    });
    // Results of a check already removed may still be on their way: they are dropped.
    this.ids = seen;
    if (line === this.line) return;
    this.line = line;
    this.send(line);
  }

  protected override helloFields(hello: Record<string, unknown>): Record<string, unknown> {
    const text = (v: unknown) => (typeof v === 'string' ? v : null);
    return {
      icmp4: text(hello.icmp4),
      icmp6: text(hello.icmp6),
      icmp4_error: text(hello.icmp4_error),
      icmp6_error: text(hello.icmp6_error),
    };
  }

  protected override onConnected(): void {
    this.send(this.line);
  }

  protected onMessage(msg: Record<string, unknown>): void {
    if (msg.type === 'result') this.onResultLine(msg);
    else if (msg.type === 'checks') {
      // The set was taken: a refusal reported before is over.
      this.setStatus('watching', null);
    } else if (msg.type === 'error') {
      const error = typeof msg.error === 'string' ? msg.error : 'check set refused';
      this.options.logger.error(
        { event: 'probe.checks_refused', host: this.point, error },
        'prober refused the check set; it runs the previous one',
      );
      this.setStatus('watching', `check set refused: ${error}`);
    }
  }

  private onResultLine(msg: Record<string, unknown>): void {
    const id = msg.id;
    if (typeof id !== 'string' || !this.ids.has(id)) return;
    let result: ProbeResult;
    const base = { point: this.point, id, at: this.now(), detail: null, rttMs: null };
    if (typeof msg.unavailable === 'string') {
      result = { ...base, outcome: 'unavailable', detail: msg.unavailable };
    } else if (msg.ok === true) {
      result = {
        ...base,
        outcome: 'ok',
        rttMs: typeof msg.rtt_ms === 'number' ? msg.rtt_ms : null,
      };
    } else if (msg.ok === false) {
      result = {
        ...base,
        outcome: 'fail',
        detail: typeof msg.error === 'string' ? msg.error : null,
      };
    } else {
      this.options.logger.warn(
        { event: 'probe.bad_line', host: this.point, check: id, error: 'result without outcome' },
        'probe result line incomplete; ignored',
      );
      return;
    }
    try {
      this.options.onResult(result);
    } catch (err) {
      this.options.logger.error(
        { event: 'probe.on_result_failed', host: this.point, error: (err as Error).message },
        'result callback failed',
      );
    }
  }
}
