import type { Route, RouteConflict } from '../routes/types.ts';
import type { SyncUpdate } from '../routes/routes-store.ts';
import type { Run } from '../runs/types.ts';

export const APPLY_TASK = 'routeplane_routes';

interface ModuleRef {
  /** null for a route the module removes: it is not in the desired set, so it has no id. */
  id: string | null;
  to: string;
  table?: number;
  metric?: number;
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

/** The lists in which the module names each desired route it was given, by id. */
const REPORTS = ['added', 'replaced', 'unchanged', 'conflicts', 'errors'] as const;

export interface HostResult {
  host: string;
  /**
   * null when the host applied its set (conflicts and per-route errors are per route); else
   * why not, which has the reconciler try the host again.
   */
  hostError: string | null;
  updates: SyncUpdate[];
}

/**
 * Turns a finished apply run into sync states for the routes it settled: conflicts and
 * per-route errors as the module reported them, everything else in sync, or, when the host
 * itself failed (unreachable, module crash, run canceled), every route failed with its reason.
 *
 * A removal that failed is reported by the module without an id (routes leaving the kernel are
 * not in the set it is given). It still fails the host, and every settled route the module
 * did not name, which are the ones leaving the kernel, is failed with it rather than marked in
 * sync: their rows then stay unsynced, so each retry tries the removal again until it holds.
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
    const allErrors = (task.data.errors as ModuleError[] | undefined) ?? [];
    const errors = new Map(allErrors.filter((e) => e.id).map((e) => [e.id, e]));
    const removalError = describeRemovalFailures(allErrors.filter((e) => !e.id));
    const named = new Set(
      REPORTS.flatMap((k) => ((task.data[k] as ModuleRef[] | undefined) ?? []).map((r) => r.id)),
    );
    const failedAt = errors.size > 0 || removalError ? retryAt(host) : null;
    return {
      host,
      hostError: removalError,
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
        if (removalError && !named.has(id)) {
          return {
            id,
            state: 'failed',
            error: removalError,
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

/** One message for the routes the module could not remove, or null when there were none. */
function describeRemovalFailures(failures: ModuleError[]): string | null {
  if (failures.length === 0) return null;
  const each = failures.map(
    (e) => `${e.to} (table ${e.table ?? '?'}, metric ${e.metric ?? '?'}): ${e.error}`,
  );
  return `could not remove ${each.join('; ')}`;
}
