import type { Route, RouteConflict } from '../routes/types.ts';
import type { SyncUpdate } from '../routes/routes-store.ts';
import type { Run } from '../runs/types.ts';

export const APPLY_TASK = 'routeplane_routes';

interface ModuleRef {
  id: string | null;
  to: string;
}
interface ModuleConflict extends ModuleRef {
  reason: RouteConflict['reason'];
  existing?: Record<string, unknown>;
  management_address?: string;
}
interface ModuleError extends ModuleRef {
  error: string;
}

/** The module's argument for one route: only what the kernel needs, plus the id to report by. */
export function moduleRoute(r: Route): Record<string, unknown> {
  return {
    id: r.id,
    to: r.to,
    table: r.table,
    metric: r.metric,
    ...(r.via ? { via: r.via } : {}),
    ...(r.dev ? { dev: r.dev } : {}),
    ...(r.scope ? { scope: r.scope } : {}),
    ...(r.src ? { src: r.src } : {}),
    ...(r.onlink ? { onlink: true } : {}),
    ...(r.force ? { force: true } : {}),
  };
}

export interface HostResult {
  host: string;
  /** null when the host applied its set (conflicts and per-route errors are per route). */
  hostError: string | null;
  updates: SyncUpdate[];
}

/**
 * Turns a finished apply run into sync states for the routes it settled: conflicts and
 * per-route errors as the module reported them, everything else in sync, or, when the host
 * itself failed (unreachable, module crash, run canceled), every route failed with its reason.
 */
export function syncFromRun(
  run: Run,
  settled: Map<string, string[]>,
  retryAt: (host: string) => Date,
): HostResult[] {
  return [...settled].map(([host, ids]) => {
    const outcome = run.summary[host];
    const task = run.results.find((r) => r.host === host && r.task === APPLY_TASK);
    const ok = task && (task.status === 'ok' || task.status === 'changed');
    if (!ok) {
      const error =
        task?.msg ?? outcome?.msg ?? run.error ?? `apply run ${run.status} before reaching ${host}`;
      const at = retryAt(host);
      return {
        host,
        hostError: error,
        updates: ids.map((id) => ({
          id,
          state: 'failed',
          error,
          conflict: null,
          retryAt: at,
          runId: run.id,
        })),
      };
    }
    const conflicts = new Map(
      ((task.data.conflicts as ModuleConflict[] | undefined) ?? []).map((c) => [c.id, c]),
    );
    const errors = new Map(
      ((task.data.errors as ModuleError[] | undefined) ?? [])
        .filter((e) => e.id)
        .map((e) => [e.id, e]),
    );
    const failedAt = errors.size > 0 ? retryAt(host) : null;
    return {
      host,
      hostError: null,
      updates: ids.map((id): SyncUpdate => {
        const c = conflicts.get(id);
        if (c) {
          return {
            id,
            state: 'conflict',
            error:
              c.reason === 'lockout'
                ? `would capture the management address ${c.management_address}; set force to apply anyway`
                : `the kernel already has a route for ${c.to} that routeplane does not own`,
            conflict: {
              reason: c.reason,
              ...(c.existing ? { existing: c.existing } : {}),
              ...(c.management_address ? { managementAddress: c.management_address } : {}),
            },
            retryAt: null,
            runId: run.id,
          };
        }
        const e = errors.get(id);
        if (e) {
          return {
            id,
            state: 'failed',
            error: e.error,
            conflict: null,
            retryAt: failedAt,
            runId: run.id,
          };
        }
        return { id, state: 'in_sync', error: null, conflict: null, retryAt: null, runId: run.id };
      }),
    };
  });
}
