import type { Schemas } from '../http/api.ts';
import type { FirewallSet } from './set-store.ts';
import type { FirewallRule } from './types.ts';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function presentRule(r: FirewallRule): Schemas['FirewallRule'] {
  return {
    id: r.id,
    host: r.host,
    chain: r.chain,
    family: r.family,
    protocol: r.protocol,
    src: r.match.src,
    dst: r.match.dst,
    sport: r.match.sport,
    dport: r.match.dport,
    iif: r.match.iif,
    oif: r.match.oif,
    action: r.action,
    to: r.match.to
      ? { address: r.match.to.address, ...(r.match.to.port ? { port: r.match.to.port } : {}) }
      : null,
    priority: r.priority,
    comment: r.comment,
    route_id: r.routeId,
    create_at: iso(r.createAt),
    delete_at: iso(r.deleteAt),
    status: r.status,
    sync: {
      state: r.sync.state,
      error: r.sync.error,
      conflict: null,
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
  };
}

export function presentSet(s: FirewallSet): Schemas['FirewallSet'] {
  return {
    id: s.id,
    name: s.name,
    host: s.target,
    type: s.type,
    elements: s.elements,
    comment: s.comment,
    created_by: s.createdBy,
    created_at: s.createdAt.toISOString(),
    updated_at: s.updatedAt.toISOString(),
    deleted_at: iso(s.deletedAt),
    deleted_by: s.deletedBy,
  };
}
