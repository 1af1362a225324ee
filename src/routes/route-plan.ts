import { ConflictError, ValidationError } from '../http/errors.ts';
import type { Config } from '../config.ts';
import type { Inventory } from '../hosts/inventory.ts';
import { writeTargets } from '../hosts/write-targets.ts';
import { checkSchedule, parseRouteSpec, parseSchedule, type RouteInput } from './route-input.ts';
import type { Identity } from './routes-store.ts';
import {
  sameForwarding,
  sameSchedule,
  type Route,
  type RouteSchedule,
  type RouteSpec,
} from './types.ts';

/** One route a create request asks for, checked, with where it sits in the body. */
export interface PlannedRoute {
  spec: RouteSpec;
  schedule: RouteSchedule;
  input: RouteInput;
  base: string;
}

/**
 * Checks a create request's items against the inventory and each other's rules, expanding a
 * group into one route per member. `base` is each item's JSON pointer, for error fields.
 */
const ROUTE_NOUNS = { objects: 'routes', managed: 'its routes' };

export function planRoutes(
  inputs: { input: RouteInput; base: string }[],
  inv: Inventory,
  now: Date,
  config: Pick<Config, 'allowLocalWrites' | 'maxBatchItems'>,
): PlannedRoute[] {
  const targets = writeTargets(inputs, inv, config, ROUTE_NOUNS);
  const planned: PlannedRoute[] = [];
  for (const [i, { input, base }] of inputs.entries()) {
    const hosts = targets[i]!;
    const schedule = parseSchedule(input, base);
    checkSchedule(schedule, now, base);
    for (const host of hosts)
      planned.push({ spec: parseRouteSpec(input, host, base), schedule, input, base });
  }
  return planned;
}

export const keyOf = (k: Identity) => `${k.host}|${k.table}|${k.to}|${k.metric}`;

/** What makes a live route with the same identity differ from the request, if anything. */
export type Difference = 'forwarding' | 'schedule' | null;

export function differenceOf(
  found: RouteSpec & RouteSchedule,
  p: PlannedRoute,
  now: Date,
): Difference {
  if (!sameForwarding(found, p.spec)) return 'forwarding';
  if (!sameSchedule(found, p.schedule, now)) return 'schedule';
  return null;
}

/**
 * Within one request, the same identity twice is one route if both ask the same, else an
 * error: which of the two should win is not ours to guess.
 */
export function uniquePlanned(planned: PlannedRoute[], now: Date): PlannedRoute[] {
  const unique = new Map<string, PlannedRoute>();
  for (const p of planned) {
    const seen = unique.get(keyOf(p.spec));
    const differs = seen ? differenceOf({ ...seen.spec, ...seen.schedule }, p, now) : null;
    if (differs) {
      throw ValidationError.field(
        `${p.base}/to`,
        `${p.spec.to} on ${p.spec.host} appears twice in the request with different ${differs}`,
      );
    }
    if (!seen) unique.set(keyOf(p.spec), p);
  }
  return [...unique.values()];
}

const when = (d: Date | null) => d?.toISOString() ?? 'none';

/** The 409 a POST gets for an identity that is already live with other forwarding or schedule. */
export function identityConflict(
  found: Route,
  p: PlannedRoute,
  differs: Difference,
  now: Date,
): ConflictError {
  const which = `${found.host} already has route ${found.id} to ${found.to} (table ${found.table}, metric ${found.metric})`;
  if (differs === 'forwarding') {
    return new ConflictError(
      `${which} via ${found.via ?? found.dev}; use PUT /v1/routes to move it`,
      { field: `${p.base}/to`, route_id: found.id },
    );
  }
  const startsTheSame = sameSchedule(
    { createAt: found.createAt, deleteAt: null },
    { createAt: p.schedule.createAt, deleteAt: null },
    now,
  );
  const field = `${p.base}/${startsTheSame ? 'delete_at' : 'create_at'}`;
  return new ConflictError(
    `${which} with another schedule (create_at ${when(found.createAt)}, delete_at ${when(found.deleteAt)}); PATCH /v1/routes/${found.id} or PUT /v1/routes changes it`,
    { field, route_id: found.id },
  );
}
