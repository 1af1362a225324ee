import ipaddr from 'ipaddr.js';
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

/** Ranges a gateway is never in, whose probes would only reach the checking host itself. */
const NOT_GATEWAYS: Record<string, string> = {
  unspecified: 'the unspecified address',
  loopback: 'a loopback address',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
};

/**
 * A candidate is probed from the route's host, or from the controller: it must be an address
 * a gateway can have, so that no check reaches the checking host's own services (loopback)
 * or a link-local service such as a cloud metadata endpoint. An IPv6 link-local gateway is
 * fine on the route's device, which must then be named.
 */
function checkProbeable(address: string, field: string, dev: string | null): void {
  const parsed = ipaddr.parse(address);
  const range =
    parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()
      ? (parsed as ipaddr.IPv6).toIPv4Address().range()
      : parsed.range();
  const what = NOT_GATEWAYS[range];
  if (what) throw ValidationError.field(field, `${address} is ${what}, not a gateway`);
  if (range === 'linkLocal' && parsed.kind() === 'ipv4') {
    throw ValidationError.field(field, `${address} is link-local (169.254.0.0/16), not a gateway`);
  }
  if (range === 'linkLocal' && !dev) {
    throw ValidationError.field(field, `${address} is link-local: name the route's dev`);
  }
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
  /** The route's device: an IPv6 link-local candidate is probed on it. */
  dev: string | null = null,
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
  const candidates = input.via.map((v, i) => {
    const field = `${base}/via/${i}`;
    const address = parseAddress(v, family, field);
    checkProbeable(address, field, dev);
    return address;
  });
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
    lastSwitch: null,
  };
}

/**
 * Where a route stands once its candidates or policy change: the gateways still candidates
 * stay in use (a new policy is no reason to move), with their health, the last switch (its
 * hold-down still counts); the next decision then moves it if it must. A new
 * mode, or nothing in use left, starts as a new route does, with the health already known.
 */
export function carriedFailoverState(
  before: { policy: FailoverPolicy | null; state: FailoverState | null },
  policy: FailoverPolicy,
  now: Date,
): FailoverState {
  const fresh = initialFailoverState(policy, now);
  const old = before.state;
  if (!old) return fresh;
  for (const via of policy.candidates) {
    const known = old.health[via];
    if (known) fresh.health[via] = known;
  }
  const kept = policy.candidates.filter((v) => old.activeVia.includes(v));
  if (before.policy?.mode !== policy.mode || kept.length === 0) return fresh;
  return { ...fresh, activeVia: kept, lastSwitch: old.lastSwitch };
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
