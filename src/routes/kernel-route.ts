import ipaddr from 'ipaddr.js';

/**
 * The kernel's view of a route, in one place for the TypeScript side: host state, the compat
 * surface, route input and the tests' kernel probes all normalise through here.
 *
 * `ip -j` and `ip -N -j` spell the same route differently (table "main" or 254, "default" or
 * 0.0.0.0/0, a host route without its length), and the kernel stores an IPv6 route's metric 0
 * as 1024. `playbooks/module_utils/routeplane_kernel.py` is the Python twin used by the
 * modules on the hosts; tests/integration/routes/kernel-normalise.test.ts runs both on the
 * same inputs and expects the same answers.
 */

export type KernelFamily = 4 | 6;

export const MAIN_TABLE = 254;
export const UINT32_MAX = 4_294_967_295;

/** The names iproute2 always knows (others live in a host's rt_tables files). */
const TABLE_IDS: Record<string, number> = { unspec: 0, default: 253, main: 254, local: 255 };
const TABLE_NAMES: Record<number, string> = { 253: 'default', 254: 'main', 255: 'local' };

/** What the kernel stores when a route names no metric, and what it makes of metric 0. */
export const DEFAULT_METRIC: Record<KernelFamily, number> = { 4: 0, 6: 1024 };

/** 4 or 6 from "inet"/"inet6", 4/6, or an address or prefix. */
export function familyOf(value: unknown): KernelFamily {
  if (value === 4 || value === '4' || value === 'inet') return 4;
  if (value === 6 || value === '6' || value === 'inet6') return 6;
  const text = String(value);
  if (text === 'default') throw new Error("'default' has no family of its own");
  const addr = ipaddr.parse(text.split('/')[0]!.split('%')[0]!);
  return addr.kind() === 'ipv4' ? 4 : 6;
}

/** An address as the kernel (and Postgres) prints it: IPv4-mapped IPv6 keeps a dotted tail. */
export function canonicalAddress(value: string | ipaddr.IPv4 | ipaddr.IPv6): string {
  const addr = typeof value === 'string' ? ipaddr.parse(value.split('%')[0]!) : value;
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    return `::ffff:${(addr as ipaddr.IPv6).toIPv4Address().toString()}`;
  }
  return addr.toString();
}

/**
 * A destination as a full prefix: `default` is 0.0.0.0/0 or ::/0, host routes get /32 or
 * /128, host bits are cleared, IPv6 is compressed and IPv4-mapped keeps its dotted tail.
 */
export function canonicalPrefix(dst: string, family?: unknown): string {
  if (dst === 'default') {
    if (family === undefined) throw new Error("'default' needs a family");
    return familyOf(family) === 4 ? '0.0.0.0/0' : '::/0';
  }
  const [addrText, lenText] = dst.split('/');
  const addr = ipaddr.parse(addrText!);
  const bits = addr.kind() === 'ipv4' ? 32 : 128;
  const len = lenText === undefined ? bits : Number(lenText);
  if (!/^\d+$/.test(lenText ?? String(bits)) || len > bits) throw new Error(`bad prefix ${dst}`);
  if (family !== undefined && familyOf(family) !== (bits === 32 ? 4 : 6)) {
    throw new Error(`${dst} is not IPv${familyOf(family)}`);
  }
  const network =
    bits === 32
      ? ipaddr.IPv4.networkAddressFromCIDR(`${addr.toString()}/${len}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${addr.toString()}/${len}`);
  return `${canonicalAddress(network)}/${len}`;
}

/**
 * A table as a number: absent is main; main/local/default, numbers and numeric strings. A
 * name iproute2 does not always know (one from a host's rt_tables) is an error.
 */
export function tableId(value: unknown): number {
  if (value === undefined || value === null || value === '') return MAIN_TABLE;
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^\d+$/.test(value.trim())) n = Number(value.trim());
  else if (typeof value === 'string' && value.trim() in TABLE_IDS) n = TABLE_IDS[value.trim()]!;
  else throw new Error(`unknown table ${JSON.stringify(value)}`);
  if (!Number.isInteger(n) || n < 0 || n > UINT32_MAX) throw new Error(`table ${n} out of range`);
  return n;
}

/** How `ip -j` names a table: main, local or default, otherwise its number as text. */
export function tableName(table: unknown): string {
  const n = tableId(table);
  return TABLE_NAMES[n] ?? String(n);
}

/** The metric the kernel stores: the family's default when absent, 1024 for IPv6 metric 0. */
export function kernelMetric(metric: unknown, family: unknown): number {
  const fam = familyOf(family);
  if (metric === undefined || metric === null || metric === '') return DEFAULT_METRIC[fam];
  const n = typeof metric === 'number' ? metric : Number(metric);
  if (!Number.isInteger(n) || n < 0 || n > UINT32_MAX) {
    throw new Error(`metric ${JSON.stringify(metric)} out of range`);
  }
  return fam === 6 && n === 0 ? DEFAULT_METRIC[6] : n;
}

/** A route's identity as the kernel keeps it. */
export interface KernelIdentity {
  family: KernelFamily;
  /** Always a full canonical prefix. */
  dst: string;
  table: number;
  metric: number;
}

/** A route entry as `ip -j` or `ip -N -j` prints it (or as gather passed it on). */
export interface RawKernelRoute {
  dst: string;
  family?: unknown;
  table?: unknown;
  metric?: unknown;
}

/**
 * The identity of one route as `ip -j` or `ip -N -j` prints it. `family` is needed for
 * `default` unless the entry says (`family: inet6`).
 */
export function normaliseKernelRoute(raw: RawKernelRoute, family?: unknown): KernelIdentity {
  const fam = familyOf(family ?? raw.family ?? raw.dst);
  return {
    family: fam,
    dst: canonicalPrefix(raw.dst, fam),
    table: tableId(raw.table),
    metric: kernelMetric(raw.metric, fam),
  };
}

/** One key per kernel route: table, destination and metric (family is in the destination). */
export const identityKey = (r: Pick<KernelIdentity, 'table' | 'dst' | 'metric'>): string =>
  `${r.table} ${r.dst} ${r.metric}`;

/*
 * Multipath (ECMP). Seen on Linux 6.18 with iproute2 6.1, both families alike: a route of two
 * or more nexthops has no top-level gateway or dev and lists them under `nexthops`, each
 * { gateway, dev, weight, flags } (flags such as onlink, linkdown, dead are per nexthop), in
 * the order they were given. A route given one `nexthop` is stored as a plain gateway (its
 * weight is dropped). Kernels before 4.11 list an IPv6 multipath route as one entry per
 * nexthop; older iproute2 may leave `weight` out (it is 1).
 */

/** One path of a route: its gateway (canonical), device and weight (1 for a single path). */
export interface Nexthop {
  gateway: string | null;
  dev: string | null;
  weight: number;
}

/** The forwarding part of a route entry as `ip -j` prints it (or as host state keeps it). */
export interface RawForwarding {
  gateway?: unknown;
  dev?: unknown;
  nexthops?: unknown;
}

const text = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/** A gateway as the kernel prints it; text that is no address is kept as it is. */
function gatewayOf(v: unknown): string | null {
  const t = text(v);
  if (t === null) return null;
  const bare = t.split('%')[0]!;
  // Only the spellings Python's ipaddress reads too (ipaddr.js also takes 0x.., 1.2.3, ...).
  if (!ipaddr.IPv4.isValidFourPartDecimal(bare) && !ipaddr.IPv6.isValid(bare)) return t;
  return canonicalAddress(bare);
}

const weightOf = (v: unknown): number =>
  typeof v === 'number' && Number.isInteger(v) && v >= 1 ? v : 1;

const hopKey = (h: Nexthop): [string, string, number] => [h.gateway ?? '', h.dev ?? '', h.weight];

function compareHops(a: Nexthop, b: Nexthop): number {
  const [ka, kb] = [hopKey(a), hopKey(b)];
  for (let i = 0; i < 3; i++) {
    if (ka[i]! < kb[i]!) return -1;
    if (ka[i]! > kb[i]!) return 1;
  }
  return 0;
}

/**
 * A route entry's forwarding as a set: its `nexthops` (multipath), or its top-level gateway
 * and dev (single path, weight 1), sorted; gateways canonical, a missing weight 1.
 */
export function nexthopSet(raw: RawForwarding): Nexthop[] {
  const found = kernelNexthops(raw.nexthops) ?? [
    { gateway: gatewayOf(raw.gateway), dev: text(raw.dev), weight: 1 },
  ];
  return found.sort(compareHops);
}

/**
 * The paths of a multipath route as `ip -j` lists them (`nexthops`), in the kernel's order,
 * gateways canonical and weight 1 where ip leaves it out; null for a single-path entry.
 */
export function kernelNexthops(v: unknown): Nexthop[] | null {
  if (!Array.isArray(v) || v.length === 0) return null;
  return (v as unknown[])
    .filter((h): h is Record<string, unknown> => typeof h === 'object' && h !== null)
    .map((h) => ({ gateway: gatewayOf(h.gateway), dev: text(h.dev), weight: weightOf(h.weight) }));
}

/**
 * Whether a desired forwarding is the kernel's `actual` one, whatever the order of either: a
 * desired member without dev matches a kernel member of the same gateway and weight on any
 * device.
 */
export function sameNexthops(desired: readonly Nexthop[], actual: readonly Nexthop[]): boolean {
  const norm = (h: Nexthop): Nexthop => ({
    gateway: gatewayOf(h.gateway),
    dev: text(h.dev),
    weight: weightOf(h.weight),
  });
  const want = desired.map(norm);
  const left = actual.map(norm);
  if (want.length !== left.length) return false;
  // Members naming a device take their exact match first; those without one then take any
  // remaining member of the same gateway and weight (interchangeable among themselves).
  const ordered = [...want.filter((h) => h.dev !== null), ...want.filter((h) => h.dev === null)];
  for (const hop of ordered) {
    const i = left.findIndex(
      (have) =>
        have.gateway === hop.gateway &&
        have.weight === hop.weight &&
        (hop.dev === null || have.dev === hop.dev),
    );
    if (i < 0) return false;
    left.splice(i, 1);
  }
  return true;
}
