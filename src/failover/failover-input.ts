import { ValidationError } from '../http/errors.ts';
import type {
  Family,
  FailoverMode,
  FailoverPolicy,
  FailoverState,
  HealthCheck,
} from '../routes/types.ts';

/** A health check as a request states it (snake_case like the API). */
export interface HealthCheckInput {
  type: 'icmp' | 'tcp';
  port?: number;
  interval_s?: number;
  timeout_s?: number;
  rise?: number;
  fall?: number;
}

/** The failover part of a route as a request states it. */
export interface FailoverInput {
  via?: string | string[] | null;
  health_check?: HealthCheckInput | HealthCheckInput[] | null;
  mode?: FailoverMode | null;
  preempt?: boolean | null;
  hold_down_s?: number | null;
}

export const CHECK_DEFAULTS = { intervalS: 2, timeoutS: 1, rise: 2, fall: 2 } as const;
export const HOLD_DOWN_DEFAULT_S = 10;

const POLICY_FIELDS = ['health_check', 'mode', 'preempt', 'hold_down_s'] as const;

function parseCheck(c: HealthCheckInput, field: string): HealthCheck {
  if (c.type === 'tcp' && c.port === undefined) {
    throw ValidationError.field(`${field}/port`, 'a tcp check needs a port');
  }
  if (c.type === 'icmp' && c.port !== undefined) {
    throw ValidationError.field(`${field}/port`, 'an icmp check has no port');
  }
  const check: HealthCheck = {
    type: c.type,
    port: c.type === 'tcp' ? c.port! : null,
    intervalS: c.interval_s ?? CHECK_DEFAULTS.intervalS,
    timeoutS: c.timeout_s ?? CHECK_DEFAULTS.timeoutS,
    rise: c.rise ?? CHECK_DEFAULTS.rise,
    fall: c.fall ?? CHECK_DEFAULTS.fall,
  };
  // A probe still waiting when the next is due would overlap it: the prober skips that round,
  // so `fall` would count fewer failures than it says.
  if (check.timeoutS > check.intervalS) {
    throw ValidationError.field(
      `${field}/timeout_s`,
      `must not exceed interval_s (${check.intervalS})`,
    );
  }
  return check;
}

/**
 * The candidate gateways and their policy from a request, or null for a route with one `via`
 * (or none). `parseAddress` canonicalises each candidate in the route's family. `base` is the
 * route's JSON pointer, so every error names its field.
 */
export function parseFailover(
  input: FailoverInput,
  family: Family,
  base: string,
  parseAddress: (value: string, family: Family, field: string) => string,
): FailoverPolicy | null {
  if (!Array.isArray(input.via)) {
    const stray = POLICY_FIELDS.find((f) => input[f] !== undefined && input[f] !== null);
    if (stray) {
      throw ValidationError.field(
        `${base}/${stray}`,
        'applies only to a route whose via is a list of candidate gateways',
      );
    }
    return null;
  }
  const candidates = input.via.map((v, i) => parseAddress(v, family, `${base}/via/${i}`));
  const seen = new Map<string, number>();
  candidates.forEach((c, i) => {
    const first = seen.get(c);
    if (first !== undefined) {
      throw ValidationError.field(`${base}/via/${i}`, `${c} is already candidate ${first}`);
    }
    seen.set(c, i);
  });
  const raw = input.health_check ?? [{ type: 'icmp' as const }];
  const list = Array.isArray(raw) ? raw : [raw];
  const healthCheck = list.map((c, i) =>
    parseCheck(c, Array.isArray(raw) ? `${base}/health_check/${i}` : `${base}/health_check`),
  );
  const keys = healthCheck.map((c) => `${c.type}:${c.port ?? ''}`);
  const dup = keys.findIndex((k, i) => keys.indexOf(k) !== i);
  if (dup >= 0) {
    throw ValidationError.field(`${base}/health_check/${dup}`, 'the same check appears twice');
  }
  return {
    candidates,
    healthCheck,
    mode: input.mode ?? 'failover',
    preempt: input.preempt ?? false,
    holdDownS: input.hold_down_s ?? HOLD_DOWN_DEFAULT_S,
  };
}

/**
 * Where a new candidate route starts: its first candidate at once (every candidate for
 * ecmp), health unknown; it moves only once checks say so.
 */
export function initialFailoverState(policy: FailoverPolicy, now: Date): FailoverState {
  return {
    activeVia: policy.mode === 'ecmp' ? [...policy.candidates] : [policy.candidates[0]!],
    health: Object.fromEntries(
      policy.candidates.map((c) => [c, { health: 'unknown' as const, since: now }]),
    ),
    degraded: false,
    lastSwitch: null,
  };
}

/** A check with its defaults applied, in the API's words. */
export function checkInput(c: HealthCheck): Required<Omit<HealthCheckInput, 'port'>> & {
  port?: number;
} {
  return {
    type: c.type,
    ...(c.port !== null ? { port: c.port } : {}),
    interval_s: c.intervalS,
    timeout_s: c.timeoutS,
    rise: c.rise,
    fall: c.fall,
  };
}

/** A stored policy as the request that asks for it (a PATCH changes some fields of it). */
export function policyInput(p: FailoverPolicy): FailoverInput {
  return {
    via: p.candidates,
    health_check: p.healthCheck.map(checkInput),
    mode: p.mode,
    preempt: p.preempt,
    hold_down_s: p.holdDownS,
  };
}
