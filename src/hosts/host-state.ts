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

export interface KernelRoute {
  family: 'inet' | 'inet6';
  dst: string;
  gateway: string | null;
  dev: string | null;
  protocol: string | null;
  metric: number | null;
  table: string;
  scope: string | null;
  prefsrc: string | null;
  type: string;
  flags: string[];
}

export interface HostState {
  collectedAt: Date;
  runId: string | null;
  links: Link[];
  addresses: Address[];
  routes: KernelRoute[];
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

/** iproute2 omits the length of host routes; routeplane always writes prefixes in full. */
function fullPrefix(dst: string, family: 'inet' | 'inet6'): string {
  if (dst === 'default' || dst.includes('/')) return dst;
  return `${dst}/${family === 'inet' ? 32 : 128}`;
}

/**
 * `ip -j route show table all` entries, without the kernel-maintained `local` table (one entry
 * per local and broadcast address, noise for anyone reading routes).
 */
export function parseRoutes(raw: unknown): KernelRoute[] {
  const routes: KernelRoute[] = [];
  for (const r of Array.isArray(raw) ? (raw as Raw[]) : []) {
    const family = r.family === 'inet6' ? 'inet6' : 'inet';
    const table = str(r.table) ?? (typeof r.table === 'number' ? String(r.table) : 'main');
    if (table === 'local') continue;
    const dst = str(r.dst);
    if (!dst) continue;
    routes.push({
      family,
      dst: fullPrefix(dst, family),
      gateway: str(r.gateway),
      dev: str(r.dev),
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

export function stateFromModuleData(
  data: Record<string, unknown>,
  runId: string | null,
  at: Date,
): HostState {
  const { links, addresses } = parseLinks(data.links);
  return { collectedAt: at, runId, links, addresses, routes: parseRoutes(data.routes) };
}
