import {
  canonicalPrefix,
  kernelNexthops,
  MAIN_TABLE,
  tableId,
  tableName,
  type Nexthop,
} from '../routes/kernel-route.ts';

/** A host's links, addresses and routes, normalised from `ip -j` output. */
export interface Link {
  ifname: string;
  lladdr: string | null;
  mtu: number | null;
  state: string;
  flags: string[];
}

export interface Address {
  ifname: string;
  family: 'inet' | 'inet6';
  address: string;
  prefixlen: number;
  scope: string;
}

/** One path of a multipath route, as the kernel prints it (weight 1 when ip leaves it out). */
export type KernelNexthop = Nexthop;

export interface KernelRoute {
  family: 'inet' | 'inet6';
  dst: string;
  /** null for a multipath route: its gateways are in `nexthops`. */
  gateway: string | null;
  /** null for a multipath route: its devices are in `nexthops`. */
  dev: string | null;
  /**
   * The paths of a multipath (ECMP) route, in the kernel's order; null for a single path.
   * Absent in snapshots gathered before routeplane read multipath routes.
   */
  nexthops?: KernelNexthop[] | null;
  protocol: string | null;
  metric: number | null;
  table: string;
  scope: string | null;
  prefsrc: string | null;
  type: string;
  flags: string[];
}

/** A host's firewall as the last gather read it (nft -j and nft list ruleset). */
export interface FirewallState {
  /** Whether the host has nft at all. */
  available: boolean;
  /** routeplane's table (`inet routeplane`) as nft -j lists it; null when there is none. */
  table: Record<string, unknown>[] | null;
  /** The host's whole ruleset, as text. */
  ruleset: string | null;
  error: string | null;
}

export interface HostState {
  collectedAt: Date;
  runId: string | null;
  links: Link[];
  addresses: Address[];
  routes: KernelRoute[];
  /** Absent in snapshots gathered before routeplane read firewalls. */
  firewall?: FirewallState | null;
}

type Raw = Record<string, unknown>;

const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
const strs = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x) => typeof x === 'string') : [];

/** `ip -j addr show` entries: one per link, each with its `addr_info`. */
export function parseLinks(raw: unknown): { links: Link[]; addresses: Address[] } {
  const links: Link[] = [];
  const addresses: Address[] = [];
  for (const l of Array.isArray(raw) ? (raw as Raw[]) : []) {
    const ifname = str(l.ifname);
    if (!ifname) continue;
    links.push({
      ifname,
      lladdr: str(l.address),
      mtu: num(l.mtu),
      state: str(l.operstate) ?? 'UNKNOWN',
      flags: strs(l.flags),
    });
    for (const a of Array.isArray(l.addr_info) ? (l.addr_info as Raw[]) : []) {
      const family = a.family === 'inet6' ? 'inet6' : a.family === 'inet' ? 'inet' : null;
      const address = str(a.local);
      if (!family || !address || typeof a.prefixlen !== 'number') continue;
      addresses.push({
        ifname,
        family,
        address,
        prefixlen: a.prefixlen,
        scope: str(a.scope) ?? 'global',
      });
    }
  }
  return { links, addresses };
}

/**
 * `ip -j route show table all` entries (as the gather module passes them on, or raw), without
 * the kernel-maintained `local` table (one entry per local and broadcast address, noise for
 * anyone reading routes). Destinations and tables go through the one kernel normalisation
 * (routes/kernel-route.ts): `default` is 0.0.0.0/0 or ::/0, host routes carry their length,
 * and the table is main, local, default or its number, whichever way ip spelled it.
 */
export function parseRoutes(raw: unknown): KernelRoute[] {
  const routes: KernelRoute[] = [];
  for (const r of Array.isArray(raw) ? (raw as Raw[]) : []) {
    const family = r.family === 'inet6' ? 'inet6' : 'inet';
    const rawTable = typeof r.table === 'number' ? r.table : str(r.table);
    let table: string;
    try {
      table = tableName(rawTable);
    } catch {
      table = String(rawTable); // a name from the host's rt_tables the gather could not map
    }
    if (table === 'local') continue;
    const dstText = str(r.dst);
    if (!dstText) continue;
    let dst = dstText;
    try {
      dst = canonicalPrefix(dstText, family);
    } catch {
      // not an address: kept as the kernel printed it
    }
    routes.push({
      family,
      dst,
      gateway: str(r.gateway),
      dev: str(r.dev),
      nexthops: kernelNexthops(r.nexthops),
      protocol: str(r.protocol),
      metric: num(r.metric),
      table,
      scope: str(r.scope),
      prefsrc: str(r.prefsrc),
      type: str(r.type) ?? 'unicast',
      flags: strs(r.flags),
    });
  }
  return routes;
}

/** The table of a reported route as a number, or null for a name only its host knows. */
export function kernelTableId(r: Pick<KernelRoute, 'table'>): number | null {
  try {
    return tableId(r.table);
  } catch {
    return null;
  }
}

function canonicalDst(r: Pick<KernelRoute, 'dst' | 'family'>): string | null {
  try {
    return canonicalPrefix(r.dst, r.family);
  } catch {
    return null;
  }
}

/** Whether the host reports a route in its main table to exactly this destination. */
export function hasMainRouteTo(routes: KernelRoute[], to: string): boolean {
  const want = canonicalPrefix(to);
  return routes.some((r) => kernelTableId(r) === MAIN_TABLE && canonicalDst(r) === want);
}

export function stateFromModuleData(
  data: Record<string, unknown>,
  runId: string | null,
  at: Date,
): HostState {
  const { links, addresses } = parseLinks(data.links);
  const fw = data.firewall as Partial<FirewallState> | null | undefined;
  const firewall: FirewallState | null = fw
    ? {
        available: fw.available === true,
        table: Array.isArray(fw.table) ? fw.table : null,
        ruleset: typeof fw.ruleset === 'string' ? fw.ruleset : null,
        error: typeof fw.error === 'string' ? fw.error : null,
      }
    : null;
  return {
    collectedAt: at,
    runId,
    links,
    addresses,
    routes: parseRoutes(data.routes),
    firewall,
  };
}
