import type { GatewayHealth, HealthCheck } from '../routes/types.ts';

/** What one probe found: answered, did not, or cannot be run from there at all. */
export type ProbeOutcome = 'ok' | 'fail' | 'unavailable';

interface CheckHealth {
  health: GatewayHealth;
  since: Date;
  /** Consecutive answers (or failures) since the last other outcome. */
  oks: number;
  fails: number;
  /** The last failure's reason, for logs and events. */
  detail: string | null;
}

export interface HealthTransition {
  key: string;
  from: GatewayHealth;
  to: GatewayHealth;
  at: Date;
  detail: string | null;
}

/**
 * Rise/fall counting per check: `rise` answers in a row make a check healthy, `fall` failures
 * in a row unhealthy; until either it keeps what it was (unknown at first). A check that
 * cannot run (no ICMP socket) is unavailable at once, never unhealthy: a prober that cannot
 * look must not move routes.
 */
export class HealthTracker {
  private readonly checks = new Map<string, CheckHealth>();

  observe(
    key: string,
    check: Pick<HealthCheck, 'rise' | 'fall'>,
    outcome: ProbeOutcome,
    at: Date,
    detail: string | null = null,
  ): HealthTransition | null {
    let c = this.checks.get(key);
    if (!c) {
      c = { health: 'unknown', since: at, oks: 0, fails: 0, detail: null };
      this.checks.set(key, c);
    }
    let next = c.health;
    if (outcome === 'unavailable') {
      c.oks = c.fails = 0;
      next = 'unavailable';
    } else if (outcome === 'ok') {
      c.oks++;
      c.fails = 0;
      if (c.oks >= check.rise) next = 'healthy';
    } else {
      c.fails++;
      c.oks = 0;
      if (c.fails >= check.fall) next = 'unhealthy';
    }
    c.detail = outcome === 'ok' ? null : detail;
    if (next === c.health) return null;
    const from = c.health;
    c.health = next;
    c.since = at;
    return { key, from, to: next, at, detail: c.detail };
  }

  health(key: string): GatewayHealth {
    return this.checks.get(key)?.health ?? 'unknown';
  }

  detail(key: string): string | null {
    return this.checks.get(key)?.detail ?? null;
  }

  /** Forgets checks no route asks for any more (a check asked for again starts unknown). */
  retain(keys: Set<string>): void {
    for (const k of this.checks.keys()) if (!keys.has(k)) this.checks.delete(k);
  }
}

/**
 * A gateway's health under a set of checks that must all pass: unhealthy if any check is;
 * otherwise the checks that can run decide (a check that cannot run here, such as ICMP without
 * a socket, neither passes nor fails): healthy once all of them are, unknown meanwhile, and
 * unavailable when none can run.
 */
export function combinedHealth(healths: GatewayHealth[]): GatewayHealth {
  if (healths.includes('unhealthy')) return 'unhealthy';
  const running = healths.filter((h) => h !== 'unavailable');
  if (running.length === 0) return healths.length > 0 ? 'unavailable' : 'unknown';
  return running.every((h) => h === 'healthy') ? 'healthy' : 'unknown';
}
