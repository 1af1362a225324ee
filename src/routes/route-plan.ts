import { ConflictError, PayloadTooLargeError, ValidationError } from '../http/errors.ts';
import type { Config } from '../config.ts';
import { resolveTargets, type Inventory } from '../hosts/inventory.ts';
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
export function planRoutes(
  inputs: { input: RouteInput; base: string }[],
  inv: Inventory,
  now: Date,
  config: Pick<Config, 'allowLocalWrites' | 'maxBatchItems'>,
): PlannedRoute[] {
  // Counted before anything is parsed or stored: a 500-host group times 20,000 items would
  // otherwise be ten million rows, and as many routes in one run.
  const expanded = inputs.reduce(
    (n, { input }) => n + resolveTargets(inv, [input.host]).hosts.length,
    0,
  );
  if (expanded > config.maxBatchItems) {
    throw new PayloadTooLargeError(
      `the request asks for ${expanded} routes once groups are expanded; at most MAX_BATCH_ITEMS (${config.maxBatchItems}) per request`,
    );
  }
  const planned: PlannedRoute[] = [];
  for (const { input, base } of inputs) {
    const { hosts, unknown } = resolveTargets(inv, [input.host]);
    if (unknown.length > 0 || hosts.length === 0) {
      throw ValidationError.field(
        `${base}/host`,
        `'${input.host}' is not a host or group of the inventory`,
      );
    }
    const local = hosts.filter((h) => inv.hosts.get(h)?.local);
    if (local.length > 0 && !config.allowLocalWrites) {
      throw new ConflictError(
        `${local.join(', ')} is the machine routeplane runs on and is read-only; set ALLOW_LOCAL_WRITES=true to manage its routes`,
        { field: `${base}/host` },
      );
    }
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
