import ipaddr from 'ipaddr.js';
import { ValidationError } from '../http/errors.ts';
import { canonicalAddress, kernelMetric, MAIN_TABLE } from './kernel-route.ts';
import type { Family, RouteSchedule, RouteSpec, RouteOpening } from './types.ts';
import { parseFailover, type FailoverInput } from '../failover/failover-input.ts';

/** A route as a request states it, before checks and defaults (snake_case like the API). */
export interface RouteInput extends FailoverInput {
  host: string;
  to: string;
  dev?: string | null;
  metric?: number | null;
  table?: number | null;
  scope?: string | null;
  src?: string | null;
  onlink?: boolean;
  force?: boolean;
  create_at?: string | null;
  delete_at?: string | null;
  comment?: string | null;
  allow?: { protocol?: RouteOpening['protocol']; dport?: string[]; src?: string[] }[] | null;
}

export { MAIN_TABLE };

const familyOf = (a: ipaddr.IPv4 | ipaddr.IPv6): Family => (a.kind() === 'ipv4' ? 4 : 6);

/**
 * Canonical text of an address: IPv4-mapped IPv6 stays IPv6, spelled as the kernel and
 * Postgres print it (`::ffff:192.0.2.1`).
 */
const show = (a: ipaddr.IPv4 | ipaddr.IPv6) => canonicalAddress(a);

/** `to` as a canonical prefix; a bare address is a host route, host bits set are an error. */
export function parsePrefix(value: string, field: string): { to: string; family: Family } {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  let len: number;
  try {
    if (value.includes('/')) [addr, len] = ipaddr.parseCIDR(value);
    else {
      addr = ipaddr.parse(value);
      len = addr.kind() === 'ipv4' ? 32 : 128;
    }
  } catch {
    throw ValidationError.field(field, `'${value}' is not an IPv4 or IPv6 prefix`);
  }
  const family = familyOf(addr);
  const network =
    family === 4
      ? ipaddr.IPv4.networkAddressFromCIDR(`${show(addr)}/${len}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${show(addr)}/${len}`);
  if (show(network) !== show(addr)) {
    throw ValidationError.field(
      field,
      `'${value}' has host bits set; the network is ${show(network)}/${len}`,
    );
  }
  return { to: `${show(addr)}/${len}`, family };
}

export function parseAddress(value: string, family: Family, field: string): string {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(value);
  } catch {
    throw ValidationError.field(field, `'${value}' is not an IP address`);
  }
  if (familyOf(addr) !== family) {
    throw ValidationError.field(
      field,
      `'${value}' is IPv${familyOf(addr)} but the destination is IPv${family}`,
    );
  }
  return show(addr);
}

function parseTime(value: string | null | undefined, field: string): Date | null {
  if (value === null || value === undefined) return null;
  const d = new Date(value);
  if (Number.isNaN(d.getTime()))
    throw ValidationError.field(field, `'${value}' is not a date-time`);
  return d;
}

/** Checks that create_at precedes delete_at and that delete_at has not passed. */
export function checkSchedule(s: RouteSchedule, now: Date, base: string): void {
  if (s.createAt && s.deleteAt && s.createAt >= s.deleteAt) {
    throw ValidationError.field(`${base}/create_at`, 'must be before delete_at');
  }
  if (s.deleteAt && s.deleteAt <= now) {
    throw ValidationError.field(`${base}/delete_at`, 'must be in the future');
  }
}

export function parseSchedule(
  input: Pick<RouteInput, 'create_at' | 'delete_at'>,
  base: string,
): RouteSchedule {
  return {
    createAt: parseTime(input.create_at, `${base}/create_at`),
    deleteAt: parseTime(input.delete_at, `${base}/delete_at`),
  };
}

/**
 * The kernel-facing part of a route from a request, defaults applied. `base` is the JSON
 * pointer of the route in the body (`/body`, `/body/3`), so every error names its field.
 */
export function parseRouteSpec(input: RouteInput, host: string, base: string): RouteSpec {
  const { to, family } = parsePrefix(input.to, `${base}/to`);
  const failover = parseFailover(input, family, base, parseAddress, input.dev ?? null);
  // With candidates, `via` is the first in use; a new route starts on its first candidate.
  const via = failover
    ? failover.candidates[0]!
    : typeof input.via === 'string' && input.via
      ? parseAddress(input.via, family, `${base}/via`)
      : null;
  const dev = input.dev ?? null;
  if (!via && !dev)
    throw ValidationError.field(`${base}/via`, 'at least one of via or dev is required');
  return {
    host,
    to,
    family,
    table: input.table ?? MAIN_TABLE,
    // The kernel's metric: absent is the family's default, and an IPv6 metric 0 is stored by
    // the kernel as 1024, so the route's identity says 1024 too (one route, one identity).
    metric: kernelMetric(input.metric, family),
    via,
    dev,
    scope: input.scope ?? null,
    src: input.src ? parseAddress(input.src, family, `${base}/src`) : null,
    onlink: input.onlink ?? false,
    force: input.force ?? false,
    failover,
  };
}
