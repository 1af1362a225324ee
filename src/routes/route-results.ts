import { gatewaysInUse, type Route, type RouteConflict, type SyncState } from './types.ts';
import type { SyncUpdate } from './routes-store.ts';
import { moduleResult } from '../reconciler/kind.ts';
import type { Run } from '../runs/types.ts';

/** The Ansible module that applies routes; its results are found by this name. */
export const ROUTES_MODULE = 'routeplane_routes';

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

/**
 * The module's argument for one route: only what the kernel needs, plus the id to report by.
 * A route with two or more gateways in use (ECMP) is multipath: `nexthops`, in that order, each
 * on the route's dev, of weight 1; otherwise `via` (the first, or only, gateway in use).
 */
export function moduleRoute(r: Route): Record<string, unknown> {
  const gateways = gatewaysInUse(r);
  const forwarding =
    gateways.length >= 2
      ? {
          nexthops: gateways.map((via) => ({ via, ...(r.dev ? { dev: r.dev } : {}), weight: 1 })),
        }
      : {
          // A candidate route's gateway is the one its standing says is in use.
          ...(gateways[0] ? { via: gateways[0] } : {}),
          ...(r.dev ? { dev: r.dev } : {}),
        };
  return {
    id: r.id,
    to: r.to,
    table: r.table,
    metric: r.metric,
    ...forwarding,
    ...(r.scope ? { scope: r.scope } : {}),
    ...(r.src ? { src: r.src } : {}),
    ...(r.onlink ? { onlink: true } : {}),
    ...(r.force ? { force: true } : {}),
  };
}

/**
 * A host's routes as the module's `routes` argument: base64 of their JSON, one opaque string.
 * As a list, Ansible copies, wraps and re-parses every route on the controller for each host
 * (see "Why a string" in playbooks/library/routeplane_routes.py); as a string it does nothing
 * per route, so a run costs what `ip -batch` fed by a bare Ansible task costs.
 */
export function moduleRoutesPayload(routes: Record<string, unknown>[]): string {
  return routes.length === 0 ? '' : Buffer.from(JSON.stringify(routes)).toString('base64');
}

/** The routes a payload holds (benchmarks and tests read back what a run was given). */
export function routesOfPayload(payload: unknown): Record<string, unknown>[] {
  if (Array.isArray(payload)) return payload as Record<string, unknown>[];
  if (typeof payload !== 'string' || payload === '') return [];
  return JSON.parse(Buffer.from(payload, 'base64').toString('utf8')) as Record<string, unknown>[];
}

/** The lists in which the module names each desired route it changed, by id. */
const CHANGES = ['added', 'replaced'] as const;

/**
 * The ids in one of those lists: the module names a change by its id alone; a result recorded
 * before it did (a ref with an id) reads the same.
 */
function changedIds(list: unknown): (string | null)[] {
  return ((list as (string | ModuleRef | null)[] | undefined) ?? []).map((e) =>
    typeof e === 'string' ? e : (e?.id ?? null),
  );
}

/** A route a run settles: whether the host should hold it, and its sync state before. */
export interface SettledRoute {
  id: string;
  desired: boolean;
  state: SyncState;
}

export interface HostResult {
  host: string;
  /**
   * null when the host applied its set (conflicts and per-route errors are per route); else
   * why not, which has the reconciler try the host again.
   */
  hostError: string | null;
  updates: SyncUpdate[];
  /** Desired routes a convergence run found missing or altered on a host believed in sync. */
  drift: { id: string; op: 'added' | 'replaced' }[];
}

export interface SettleOptions {
  /** The run re-applied a host believed in sync: whatever it changes is drift. */
  converging: boolean;
  /** Drift was repaired (REPAIR_DRIFT); otherwise only reported, and the routes are drifted. */
  repair: boolean;
}

/**
 * Turns a finished apply run into sync states for the routes it settles: conflicts and
 * per-route errors as the module reported them, everything else in sync, or, when the host
 * itself failed (unreachable, module crash, run canceled), every route failed with its reason.
 * Routes already in sync that the module did not name are left as they are (not rewritten on
 * every run).
 *
 * A removal that failed is reported by the module without an id (routes leaving the kernel are
 * not in the set it is given). It fails the host, and every settled route that should not be
 * in the kernel with it: their rows then stay unsynced, so each retry tries the removal again.
 */
export function syncFromRun(
  run: Run,
  settled: Map<string, SettledRoute[]>,
  retryAt: (host: string) => Date,
  opts: SettleOptions = { converging: false, repair: true },
): HostResult[] {
  return [...settled].map(([host, rows]) => {
    const outcome = run.summary[host];
    const task = moduleResult(run, host, ROUTES_MODULE);
    const ok = task && (task.status === 'ok' || task.status === 'changed');
    if (!ok) {
      const error =
        task?.msg ?? outcome?.msg ?? run.error ?? `apply run ${run.status} before reaching ${host}`;
      const at = retryAt(host);
      return {
        host,
        hostError: error,
        drift: [],
        updates: rows.map((r) => ({
          id: r.id,
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
    const drift: HostResult['drift'] = [];
    if (opts.converging) {
      // Reported drift is recorded when it is found, not again at each convergence after.
      const known = new Set(
        opts.repair ? [] : rows.filter((r) => r.state === 'drifted').map((r) => r.id),
      );
      for (const op of CHANGES) {
        for (const id of changedIds(task.data[op])) {
          if (id && !known.has(id)) drift.push({ id, op });
        }
      }
    }
    // A run that carried a write repaired everything; only a report-only convergence leaves drift.
    const drifted = new Set(
      opts.repair || !opts.converging ? [] : CHANGES.flatMap((op) => changedIds(task.data[op])),
    );
    const failedAt = errors.size > 0 || removalError ? retryAt(host) : null;
    const updates: SyncUpdate[] = [];
    for (const r of rows) {
      const id = r.id;
      const c = conflicts.get(id);
      const e = errors.get(id);
      if (c) {
        updates.push({
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
        });
      } else if (e) {
        updates.push({
          id,
          state: 'failed',
          error: e.error,
          conflict: null,
          retryAt: failedAt,
          runId: run.id,
        });
      } else if (removalError && !r.desired) {
        updates.push({
          id,
          state: 'failed',
          error: removalError,
          conflict: null,
          retryAt: failedAt,
          runId: run.id,
        });
      } else if (drifted.has(id)) {
        // Once: a route still drifted at the next convergence keeps its state and its run.
        if (r.state === 'drifted') continue;
        updates.push({
          id,
          state: 'drifted',
          error: 'missing or altered on the host; REPAIR_DRIFT is off, so it is only reported',
          conflict: null,
          retryAt: null,
          runId: run.id,
        });
      } else if (r.state !== 'in_sync') {
        updates.push({
          id,
          state: 'in_sync',
          error: null,
          conflict: null,
          retryAt: null,
          runId: run.id,
        });
      }
    }
    return { host, hostError: removalError, updates, drift };
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
