export const ROUTE_STATUSES = ['pending', 'active', 'paused', 'expired', 'deleted'] as const;
export type RouteStatus = (typeof ROUTE_STATUSES)[number];
/** Statuses a route never leaves: it is history from then on. */
export const REMOVED_STATUSES: readonly RouteStatus[] = ['expired', 'deleted'];

export const SYNC_STATES = ['in_sync', 'applying', 'failed', 'conflict', 'drifted'] as const;
export type SyncState = (typeof SYNC_STATES)[number];

export type Family = 4 | 6;

/** What a route asks the kernel for; (host, table, to, metric) is its identity. */
export interface RouteSpec {
  host: string;
  /** Canonical prefix, e.g. 203.0.113.0/24 or 2001:db8:f000::/48. */
  to: string;
  family: Family;
  table: number;
  metric: number;
  via: string | null;
  dev: string | null;
  scope: string | null;
  src: string | null;
  onlink: boolean;
  force: boolean;
}

export interface RouteSchedule {
  createAt: Date | null;
  deleteAt: Date | null;
}

export interface RouteConflict {
  reason: 'unowned' | 'lockout';
  existing?: Record<string, unknown>;
  managementAddress?: string;
}

export interface RouteSync {
  state: SyncState;
  error: string | null;
  conflict: RouteConflict | null;
  retryAt: Date | null;
  syncedAt: Date | null;
  lastRunId: string | null;
}

export interface Route extends RouteSpec, RouteSchedule {
  id: string;
  comment: string | null;
  status: RouteStatus;
  sync: RouteSync;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  removedAt: Date | null;
  removedReason: 'expired' | 'deleted' | null;
  removedBy: string | null;
}

export interface RouteEvent {
  id: number;
  routeId: string;
  at: Date;
  actor: string;
  action: string;
  from: RouteStatus | null;
  to: RouteStatus;
  detail: Record<string, unknown>;
}

/**
 * The attributes that, when they differ, make a create an update instead: the kernel-facing
 * ones, and `force`, or a route refused for lockout could never be forced afterwards.
 */
export function sameForwarding(a: RouteSpec, b: RouteSpec): boolean {
  return (
    a.via === b.via &&
    a.dev === b.dev &&
    a.scope === b.scope &&
    a.src === b.src &&
    a.onlink === b.onlink &&
    a.force === b.force
  );
}

/** The status a route should have at `now` given its schedule (for new or rescheduled ones). */
export function scheduledStatus(s: RouteSchedule, now: Date): RouteStatus {
  if (s.deleteAt && s.deleteAt <= now) return 'expired';
  if (s.createAt && s.createAt > now) return 'pending';
  return 'active';
}

/** The status of a live route given a new schedule: a paused route stays paused. */
export function rescheduledStatus(current: RouteStatus, s: RouteSchedule, now: Date): RouteStatus {
  return current === 'paused' ? 'paused' : scheduledStatus(s, now);
}

/**
 * Whether two schedules ask the same of the kernel at `now`: a create_at that has come means
 * "now", as no create_at does, so re-sending a route whose start has passed is not a change.
 */
export function sameSchedule(a: RouteSchedule, b: RouteSchedule, now: Date): boolean {
  const start = (d: Date | null) => (d === null || d <= now ? null : d.getTime());
  return (
    start(a.createAt) === start(b.createAt) &&
    (a.deleteAt?.getTime() ?? null) === (b.deleteAt?.getTime() ?? null)
  );
}
