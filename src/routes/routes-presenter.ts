import type { Schemas } from '../http/api.ts';
import type { Route } from './types.ts';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

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
  };
}
