import type { Schemas } from '../http/api.ts';
import type { HostState } from './host-state.ts';
import type { HostView } from './hosts-service.ts';

export function presentHost(v: HostView): Schemas['Host'] {
  return {
    name: v.host.name,
    groups: v.host.groups,
    vars: v.vars,
    local: v.host.local,
    local_reason: v.host.localReason,
    read_only: v.readOnly,
    reachable: v.record?.reachable ?? null,
    last_seen_at: v.record?.lastSeenAt?.toISOString() ?? null,
    last_error: v.record?.lastError ?? null,
  };
}

export function presentState(s: HostState): Schemas['HostState'] {
  return {
    collected_at: s.collectedAt.toISOString(),
    run_id: s.runId,
    links: s.links,
    addresses: s.addresses,
    // A multipath route's `nexthops` only when it has them: a single path reads as before.
    routes: s.routes.map(({ nexthops, ...r }) => (nexthops ? { ...r, nexthops } : r)),
  };
}
