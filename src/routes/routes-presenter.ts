import type { Schemas } from '../http/api.ts';
import { checkInput } from '../failover/failover-input.ts';
import { isDegraded, type FailoverPolicy, type FailoverState, type Route } from './types.ts';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** The gateway in use for failover, the set for ecmp (one shape per mode, as asked). */
const gateways = (policy: FailoverPolicy, list: string[]) =>
  policy.mode === 'ecmp' ? list : (list[0] ?? null);

/** A candidate route's policy (defaults applied) and standing, in the API's words. */
export function presentFailover(policy: FailoverPolicy, state: FailoverState) {
  return {
    via: policy.candidates,
    health_check: policy.healthCheck.map(checkInput),
    mode: policy.mode,
    preempt: policy.preempt,
    hold_down_s: policy.holdDownS,
    active_via: gateways(policy, state.activeVia) as string | string[],
    candidates: policy.candidates.map((via) => ({
      via,
      health: state.health[via]?.health ?? ('unknown' as const),
      since: (state.health[via]?.since ?? new Date(0)).toISOString(),
      active: state.activeVia.includes(via),
    })),
    degraded: isDegraded(state),
    last_switch: state.lastSwitch
      ? {
          at: state.lastSwitch.at.toISOString(),
          from: gateways(policy, state.lastSwitch.from) as string | string[],
          to: gateways(policy, state.lastSwitch.to) as string | string[],
          reason: state.lastSwitch.reason as 'gateway_failed' | 'preempt' | 'rejoin',
        }
      : null,
  };
}

export function presentRoute(r: Route): Schemas['Route'] {
  const c = r.sync.conflict;
  return {
    id: r.id,
    host: r.host,
    to: r.to,
    via: r.via,
    dev: r.dev,
    metric: r.metric,
    table: r.table,
    scope: r.scope,
    src: r.src,
    onlink: r.onlink,
    force: r.force,
    create_at: iso(r.createAt),
    delete_at: iso(r.deleteAt),
    comment: r.comment,
    ...(r.allow ? { allow: r.allow } : {}),
    status: r.status,
    sync: {
      state: r.sync.state,
      error: r.sync.error,
      conflict: c
        ? {
            reason: c.reason,
            ...(c.existing ? { existing: c.existing } : {}),
            ...(c.managementAddress ? { management_address: c.managementAddress } : {}),
          }
        : null,
      retry_at: iso(r.sync.retryAt),
      synced_at: iso(r.sync.syncedAt),
      run_id: r.sync.lastRunId,
    },
    created_by: r.createdBy,
    created_at: r.createdAt.toISOString(),
    updated_at: r.updatedAt.toISOString(),
    removed_at: iso(r.removedAt),
    removed_reason: r.removedReason,
    removed_by: r.removedBy,
    ...(r.failover && r.failoverState ? presentFailover(r.failover, r.failoverState) : {}),
  };
}
