// Pure functions over the live state: no DOM, no network. Everything here reads data that
// came from hosts and users, so nothing here builds markup.

/** Topics every dashboard subscribes to; `hosts/*` brings one `hosts/<name>` topic per host. */
export const BASE_TOPICS = ['hosts/*', 'routes', 'firewall', 'runs'];

export const HOST_TOPIC_PREFIX = 'hosts/';
export const RUN_TOPIC_PREFIX = 'runs/';

/** Run statuses that still change: their `runs/<id>` topic is worth following. */
export const LIVE_RUN_STATUSES = new Set(['queued', 'running']);

/** Lifecycle statuses of desired objects that are gone for good. */
const REMOVED_STATUSES = new Set(['deleted', 'expired']);

const TABLE_IDS = { unspec: 0, default: 253, main: 254, local: 255 };

/**
 * A route destination as a full prefix, the way the server spells kernel routes:
 * `default` is 0.0.0.0/0 or ::/0, and a host route carries its length.
 */
export function fullPrefix(dst, family) {
  if (typeof dst !== 'string' || dst === '') return '';
  const v6 = family === 'inet6' || family === 6 || (family === undefined && dst.includes(':'));
  if (dst === 'default') return v6 ? '::/0' : '0.0.0.0/0';
  const text = dst.toLowerCase();
  if (text.includes('/')) return text;
  return `${text}/${text.includes(':') ? 128 : 32}`;
}

/** A table as a number (main is 254), or null for a name only its host knows. */
export function tableNumber(table) {
  if (table === undefined || table === null || table === '') return 254;
  if (typeof table === 'number') return table;
  const t = String(table).trim();
  if (/^\d+$/.test(t)) return Number(t);
  return t in TABLE_IDS ? TABLE_IDS[t] : null;
}

/** The kernel stores IPv6 metric 0 (or none) as 1024. */
function kernelMetric(metric, v6) {
  const m = typeof metric === 'number' ? metric : 0;
  return v6 && m === 0 ? 1024 : m;
}

/** The key a kernel route and a desired route share when they are the same route. */
export function kernelRouteKey(host, r) {
  const v6 = r.family === 'inet6';
  return [host, fullPrefix(r.dst, r.family), tableNumber(r.table), kernelMetric(r.metric, v6)].join(
    '|',
  );
}

export function desiredRouteKey(route) {
  const to = fullPrefix(route.to);
  const v6 = to.includes(':');
  return [route.host, to, tableNumber(route.table), kernelMetric(route.metric, v6)].join('|');
}

/** Whether a desired object (route or firewall rule) still stands. */
export function isCurrent(obj) {
  return !obj.removed_at && !REMOVED_STATUSES.has(obj.status);
}

/** Desired routes of the `routes` topic, grouped by host: Map host -> route[]. */
export function routesByHost(routeObjects) {
  const byHost = new Map();
  for (const route of Object.values(routeObjects ?? {})) {
    if (!route || typeof route.host !== 'string' || !isCurrent(route)) continue;
    const list = byHost.get(route.host) ?? [];
    list.push(route);
    byHost.set(route.host, list);
  }
  return byHost;
}

/** Firewall rules of the `firewall` topic for one host. */
export function rulesOfHost(ruleObjects, host) {
  return Object.values(ruleObjects ?? {})
    .filter((r) => r && r.host === host && isCurrent(r))
    .sort(
      (a, b) =>
        String(a.chain).localeCompare(String(b.chain)) ||
        (a.priority ?? 0) - (b.priority ?? 0) ||
        String(a.created_at).localeCompare(String(b.created_at)),
    );
}

const byText = (f) => (a, b) => String(f(a)).localeCompare(String(f(b)), 'en', { numeric: true });

/**
 * One host topic's objects split by kind: `host`, `link/<if>`, `address/<if>/<addr>/<len>`,
 * `route/<family>/<table>/<dst>/<metric>` and `firewall`.
 */
export function splitHostObjects(objects) {
  const out = { host: null, firewall: null, links: [], addresses: [], routes: [] };
  for (const [key, obj] of Object.entries(objects ?? {})) {
    if (!obj || typeof obj !== 'object') continue;
    if (key === 'host') out.host = obj;
    else if (key === 'firewall') out.firewall = obj;
    else if (key.startsWith('link/')) out.links.push(obj);
    else if (key.startsWith('address/')) out.addresses.push(obj);
    else if (key.startsWith('route/')) out.routes.push({ key, ...obj });
  }
  out.links.sort(byText((l) => l.ifname));
  out.addresses.sort(byText((a) => `${a.family} ${a.address}`));
  out.routes.sort(
    (a, b) =>
      String(a.family).localeCompare(String(b.family)) ||
      (tableNumber(b.table) ?? -1) - (tableNumber(a.table) ?? -1) ||
      byText((r) => r.dst)(a, b) ||
      (a.metric ?? 0) - (b.metric ?? 0),
  );
  return out;
}

/**
 * The kernel routes of a host, each with the desired route it is (if any), and the desired
 * routes that have no kernel route: `{ kernel: [{route, desired}], unmatched: [desired] }`.
 */
export function matchRoutes(host, kernelRoutes, desiredRoutes) {
  const desiredByKey = new Map();
  for (const d of desiredRoutes ?? []) {
    const key = desiredRouteKey(d);
    const list = desiredByKey.get(key) ?? [];
    list.push(d);
    desiredByKey.set(key, list);
  }
  const matched = new Set();
  const kernel = kernelRoutes.map((route) => {
    const candidates = desiredByKey.get(kernelRouteKey(host, route)) ?? [];
    // Several desired rows may name one kernel route (e.g. one paused, one active): the
    // active one is the one the kernel route stands for.
    const desired = candidates.find((c) => c.status === 'active') ?? candidates[0] ?? null;
    for (const c of candidates) matched.add(c);
    return { route, desired };
  });
  const unmatched = (desiredRoutes ?? [])
    .filter((d) => !matched.has(d))
    .sort(byText((d) => fullPrefix(d.to)));
  return { kernel, unmatched };
}

/**
 * Why a desired route is not in the kernel, in words: only an active route is expected there.
 * `knownKernel` is false while the host's routes have not been read yet.
 */
export function absenceReason(route, knownKernel) {
  if (route.status === 'pending') return 'pending: not due yet';
  if (route.status === 'paused') return 'paused';
  if (route.status !== 'active') return route.status;
  if (!knownKernel) return 'kernel routes not read yet';
  if (route.sync?.state === 'applying') return 'being applied';
  return 'missing from the kernel (drifted)';
}

/**
 * A host's reachability for display: `reachable` is "true", "false" or "unknown" (the
 * data-reachable attribute), `label` says why.
 */
export function reachabilityOf(host) {
  if (!host) return { reachable: 'unknown', label: 'no data yet', error: null };
  const watch = host.watch ?? {};
  const error = watch.error || host.last_error || null;
  if (watch.state === 'unreachable' || host.reachable === false) {
    return { reachable: 'false', label: 'unreachable', error };
  }
  if (watch.state === 'watching' || host.reachable === true) {
    return { reachable: 'true', label: 'reachable', error: null };
  }
  if (watch.state === 'connecting') return { reachable: 'unknown', label: 'connecting', error };
  return { reachable: 'unknown', label: 'not watched', error };
}

/** Runs newest first. */
export function sortRuns(runObjects) {
  return Object.values(runObjects ?? {})
    .filter((r) => r && typeof r.id === 'string')
    .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
}

/** Host names of the held host topics, in natural order. */
export function hostNames(topicNames) {
  return topicNames
    .filter((t) => t.startsWith(HOST_TOPIC_PREFIX) && t !== 'hosts/*')
    .map((t) => t.slice(HOST_TOPIC_PREFIX.length))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}
