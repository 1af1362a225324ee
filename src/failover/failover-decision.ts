import type {
  FailoverPolicy,
  FailoverState,
  FailoverSwitch,
  GatewayHealth,
} from '../routes/types.ts';

/** Why a route's gateways changed. */
export type SwitchReason = 'gateway_failed' | 'preempt' | 'rejoin';

export interface HealthChange {
  via: string;
  from: GatewayHealth;
  to: GatewayHealth;
}

export interface Decision {
  state: FailoverState;
  /** Set when the gateways in use changed (the host's kernel must follow). */
  switched: (FailoverSwitch & { reason: SwitchReason }) | null;
  healthChanges: HealthChange[];
  /** When to decide again though nothing is observed: a return waiting for its hold-down. */
  recheckAt: Date | null;
}

const sameList = (a: string[], b: string[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * What a candidate route should use now, given what its host sees of each candidate. Pure:
 * the reconciler of failover (failover-engine.ts) calls it inside the transaction that locks
 * the route, so two deciders never interleave.
 *
 * - Moving off a failed gateway is never delayed; a route with no healthy candidate stays as
 *   it is and is degraded (never removed for that); the first candidate to recover is used.
 * - Returns to an earlier candidate (preempt) and ecmp rejoins wait for `holdDownS` since the
 *   last switch: at most one per hold-down per route.
 * - unknown and unavailable are not failures: a route never moves because nobody could look.
 */
export function decide(
  policy: FailoverPolicy,
  state: FailoverState,
  seen: Record<string, GatewayHealth>,
  now: Date,
): Decision {
  const healthOf = (via: string): GatewayHealth =>
    seen[via] ?? state.health[via]?.health ?? 'unknown';
  const health: FailoverState['health'] = {};
  const healthChanges: HealthChange[] = [];
  for (const via of policy.candidates) {
    const before = state.health[via];
    const h = healthOf(via);
    if (before && before.health === h) health[via] = before;
    else {
      health[via] = { health: h, since: now };
      healthChanges.push({ via, from: before?.health ?? 'unknown', to: h });
    }
  }
  const current = state.activeVia.filter((v) => policy.candidates.includes(v));
  const healthy = policy.candidates.filter((v) => healthOf(v) === 'healthy');
  const holdUntil = state.lastSwitch
    ? new Date(state.lastSwitch.at.getTime() + policy.holdDownS * 1000)
    : now;
  const holdOver = now >= holdUntil;

  let next = current;
  let reason: SwitchReason | null = null;
  let recheckAt: Date | null = null;
  if (policy.mode === 'failover') {
    const active = current[0] ?? policy.candidates[0]!;
    next = [active];
    if (healthOf(active) === 'unhealthy') {
      if (healthy.length > 0) {
        next = [healthy[0]!];
        reason = 'gateway_failed';
      }
    } else if (policy.preempt) {
      const earlier = healthy.find(
        (v) => policy.candidates.indexOf(v) < policy.candidates.indexOf(active),
      );
      if (earlier && holdOver) {
        next = [earlier];
        reason = 'preempt';
      } else if (earlier) recheckAt = holdUntil;
    }
  } else {
    const kept = current.filter((v) => healthOf(v) !== 'unhealthy');
    const outside = healthy.filter((v) => !current.includes(v));
    if (kept.length === 0) {
      // Every gateway in use failed: all healthy ones at once, or stay as it was.
      next = healthy.length > 0 ? healthy : current;
      if (healthy.length > 0) reason = 'gateway_failed';
    } else {
      let members = kept;
      if (kept.length < current.length) reason = 'gateway_failed';
      if (outside.length > 0 && holdOver && reason === null) {
        members = [...kept, ...outside];
        reason = 'rejoin';
      } else if (outside.length > 0) {
        recheckAt = reason === null ? holdUntil : new Date(now.getTime() + policy.holdDownS * 1000);
      }
      next = policy.candidates.filter((v) => members.includes(v));
    }
  }
  const changed = !sameList(next, current);
  const switched = changed
    ? { at: now, from: current, to: next, reason: reason ?? 'gateway_failed' }
    : null;
  return {
    state: {
      activeVia: next,
      health,
      lastSwitch: switched ?? state.lastSwitch,
    },
    switched,
    healthChanges,
    recheckAt,
  };
}
