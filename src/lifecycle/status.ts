/**
 * The lifecycle every kind of desired state shares (routes; firewall rules next): `pending`
 * until `create_at`, `active` until `delete_at`, `paused` by hand, `expired` at `delete_at`,
 * `deleted` by hand. Only `active` objects belong on their host.
 */
export const LIFECYCLE_STATUSES = ['pending', 'active', 'paused', 'expired', 'deleted'] as const;
export type LifecycleStatus = (typeof LIFECYCLE_STATUSES)[number];
/** Statuses an object never leaves: it is history from then on. */
export const REMOVED_STATUSES: readonly LifecycleStatus[] = ['expired', 'deleted'];
/** Statuses of an object that is still the user's intent. */
export const LIVE_STATUSES: readonly LifecycleStatus[] = ['pending', 'active', 'paused'];
/** The one status whose objects belong on their host. */
export const ON_HOST: LifecycleStatus = 'active';

export interface Schedule {
  createAt: Date | null;
  deleteAt: Date | null;
}

/** The status an object should have at `now` given its schedule (new or rescheduled ones). */
export function scheduledStatus(s: Schedule, now: Date): LifecycleStatus {
  if (s.deleteAt && s.deleteAt <= now) return 'expired';
  if (s.createAt && s.createAt > now) return 'pending';
  return 'active';
}

/** The status of a live object given a new schedule: a paused one stays paused. */
export function rescheduledStatus(
  current: LifecycleStatus,
  s: Schedule,
  now: Date,
): LifecycleStatus {
  return current === 'paused' ? 'paused' : scheduledStatus(s, now);
}

/**
 * Whether two schedules ask the same of the host at `now`: a create_at that has come means
 * "now", as no create_at does, so re-sending an object whose start has passed is not a change.
 */
export function sameSchedule(a: Schedule, b: Schedule, now: Date): boolean {
  const start = (d: Date | null) => (d === null || d <= now ? null : d.getTime());
  return (
    start(a.createAt) === start(b.createAt) &&
    (a.deleteAt?.getTime() ?? null) === (b.deleteAt?.getTime() ?? null)
  );
}

/** The hand-made transitions: which status each comes from and goes to. */
export const MANUAL_TRANSITIONS = {
  pause: { from: ['active'], to: 'paused' },
  resume: { from: ['paused'], to: 'active' },
  delete: { from: LIVE_STATUSES, to: 'deleted' },
} as const satisfies Record<string, { from: readonly LifecycleStatus[]; to: LifecycleStatus }>;
export type ManualAction = keyof typeof MANUAL_TRANSITIONS;
