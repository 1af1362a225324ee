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

/** One health check of a candidate gateway, defaults applied (failover/failover-input.ts). */
export interface HealthCheck {
  type: 'icmp' | 'tcp';
  /** The TCP port; null for icmp. */
  port: number | null;
  intervalS: number;
  timeoutS: number;
  rise: number;
  fall: number;
}

export type FailoverMode = 'failover' | 'ecmp';

/** A route with candidate gateways: which, how they are checked, and how it moves between them. */
export interface FailoverPolicy {
  /** Ordered, canonical, at least one (one: checked, and degraded when it fails). */
  candidates: string[];
  /** Every check must pass for a gateway to be healthy. */
  healthCheck: HealthCheck[];
  mode: FailoverMode;
  preempt: boolean;
  holdDownS: number;
}

export const GATEWAY_HEALTHS = ['unknown', 'healthy', 'unhealthy', 'unavailable'] as const;
export type GatewayHealth = (typeof GATEWAY_HEALTHS)[number];

export interface CandidateHealth {
  health: GatewayHealth;
  since: Date;
}

export interface FailoverSwitch {
  at: Date;
  from: string[];
  to: string[];
  reason: string;
}

/** Where a candidate route stands: the gateways in use and what its host sees of each. */
export interface FailoverState {
  /** The gateways in use, in candidate order: one for failover, the healthy set for ecmp. */
  activeVia: string[];
  health: Record<string, CandidateHealth>;
  lastSwitch: FailoverSwitch | null;
}

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
  /**
   * Candidate gateways and their checks; null for a route with one `via`. With candidates,
   * `via` is the first gateway in use (what the compat surface and single-path code read).
   */
  failover: FailoverPolicy | null;
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
  /** Present exactly when `failover` is. */
  failoverState: FailoverState | null;
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
    samePolicy(a.failover, b.failover) &&
    // With candidates, `via` is whichever one is in use: not part of what was asked.
    (a.failover !== null || a.via === b.via) &&
    a.dev === b.dev &&
    a.scope === b.scope &&
    a.src === b.src &&
    a.onlink === b.onlink &&
    a.force === b.force
  );
}

/** Whether two routes ask for the same candidates, checks and policy. */
export function samePolicy(a: FailoverPolicy | null, b: FailoverPolicy | null): boolean {
  if (a === null || b === null) return a === b;
  // Field by field: a policy read back from jsonb has its keys in another order.
  const sameCheck = (x: HealthCheck, y: HealthCheck) =>
    x.type === y.type &&
    x.port === y.port &&
    x.intervalS === y.intervalS &&
    x.timeoutS === y.timeoutS &&
    x.rise === y.rise &&
    x.fall === y.fall;
  return (
    a.mode === b.mode &&
    a.preempt === b.preempt &&
    a.holdDownS === b.holdDownS &&
    a.candidates.length === b.candidates.length &&
    a.candidates.every((c, i) => c === b.candidates[i]) &&
    a.healthCheck.length === b.healthCheck.length &&
    a.healthCheck.every((c, i) => sameCheck(c, b.healthCheck[i]!))
  );
}

/** The gateways a route should have in the kernel now: its active set, or its one `via`. */
export function gatewaysInUse(r: Pick<Route, 'via' | 'failoverState'>): string[] {
  if (r.failoverState && r.failoverState.activeVia.length > 0) return r.failoverState.activeVia;
  return r.via ? [r.via] : [];
}

/**
 * No gateway in use is healthy and no other candidate is (decide() would have moved it
 * otherwise): the route stays as it was. Derived from the standing, never stored.
 */
export function isDegraded(s: Pick<FailoverState, 'activeVia' | 'health'>): boolean {
  return s.activeVia.length > 0 && s.activeVia.every((v) => s.health[v]?.health === 'unhealthy');
}
