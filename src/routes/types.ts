import { LIFECYCLE_STATUSES, type LifecycleStatus, type Schedule } from '../lifecycle/status.ts';

export {
  REMOVED_STATUSES,
  rescheduledStatus,
  sameSchedule,
  scheduledStatus,
} from '../lifecycle/status.ts';

/** A route's lifecycle is the one every kind shares (lifecycle/status.ts). */
export const ROUTE_STATUSES = LIFECYCLE_STATUSES;
export type RouteStatus = LifecycleStatus;

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

export type RouteSchedule = Schedule;

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

/** A firewall opening a route carries: forward accept to its destination, perhaps narrowed. */
export interface RouteOpening {
  protocol: 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'any';
  dport: string[];
  src: string[];
}

export interface Route extends RouteSpec, RouteSchedule {
  id: string;
  comment: string | null;
  /** The openings asked for at creation (each a firewall rule linked to the route). */
  allow: RouteOpening[] | null;
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
