import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { Knex } from 'knex';
import type { Address } from '../hosts/host-state.ts';
import type { InventorySource } from '../hosts/inventory-source.ts';
import type { Inventory } from '../hosts/inventory.ts';
import { watchConnection } from '../live/watch/watch-connection.ts';
import type { Logger } from '../logger.ts';
import type { HostWorkStore } from '../reconciler/host-work-store.ts';
import { knexSql } from '../reconciler/sql.ts';
import type { Route } from '../routes/types.ts';
import type { FirewallStore } from './firewall-store.ts';
import type { FirewallRule } from './types.ts';

/**
 * The nft comment of the input accepts a gateway's table gets for the checks of the candidate
 * routes that name it. Not a rule id: drift (live/drift.ts) and the module map only
 * `rp:<uuid>` comments to rules, so these lines are never taken for one.
 */
export const FAILOVER_CHECKS_COMMENT = 'rp:failover-checks';

/**
 * One input accept for candidate-gateway checks, as the template renders it
 * (firewall.nft.j2, `routeplane_firewall.failover_checks`): from the checking points' own
 * addresses (`src`) or from the management sources (`src_set`, the controller's checks), to
 * one of the host's addresses, an echo request or a TCP connection to one port.
 */
export interface CheckAccept {
  family: 'ip' | 'ip6';
  /** Sorted source addresses; empty when `src_set` names the sources. */
  src: string[];
  /** The table's management set of the family, for checks the controller runs. */
  src_set: 'mgmt4' | 'mgmt6' | null;
  dst: string;
  protocol: 'icmp' | 'icmpv6' | 'tcp';
  /** The TCP port; null for an echo request. */
  port: number | null;
}

/** What the decisions here know of one inventory host. */
export interface FleetHost {
  /** `ansible_host` (or `ansible_ssh_host`) when it is an address, normalised. */
  ansibleHost: string | null;
  /** Its addresses as its last snapshot read them (host-scope ones left out), normalised. */
  addresses: { address: string; prefixlen: number }[];
  /**
   * Whether routeplane can watch it, and so checks its routes' gateways from it; false: the
   * controller checks them (failover-engine.ts, CONTROLLER_POINT).
   */
  watched: boolean;
  /** The controller itself: its checks leave from the management address. */
  local: boolean;
}

export type FleetView = Map<string, FleetHost>;

/** What a gateway host's firewall is, for the warnings. */
export interface GatewayFirewall {
  /** Its forward chain's policy (routeplane_firewall_policy.forward, drop by default). */
  forwardPolicy: 'accept' | 'drop';
  /** Its live rules (only the active ones count). */
  rules: FirewallRule[];
}

/** A candidate route as the decisions here read it. */
export type CandidateRoute = Pick<Route, 'id' | 'host' | 'to' | 'family' | 'status' | 'failover'>;

/** An address in one spelling (IPv4-mapped as IPv4), or null when it is none. */
export function normalAddress(text: unknown): string | null {
  if (typeof text !== 'string') return null;
  const bare = text.replace(/^\[|\]$/g, '').split('%')[0]!;
  return isIP(bare) ? ipaddr.process(bare).toString() : null;
}

const kindOf = (a: string) => (a.includes(':') ? 'ipv6' : 'ipv4');

/** Every address a host is known by: its inventory address and its snapshot's. */
export function hostAddresses(h: FleetHost): string[] {
  return [
    ...new Set([...(h.ansibleHost ? [h.ansibleHost] : []), ...h.addresses.map((a) => a.address)]),
  ];
}

/** Which hosts (of `among`, all by default) hold each address, each list sorted. */
export function addressOwners(view: FleetView, among?: Set<string>): Map<string, string[]> {
  const index = new Map<string, string[]>();
  for (const [name, h] of [...view].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (among && !among.has(name)) continue;
    for (const a of hostAddresses(h)) index.set(a, [...(index.get(a) ?? []), name]);
  }
  return index;
}

/** The hosts of an address index that hold `address`. */
export function ownersOf(index: Map<string, string[]>, address: string): string[] {
  const a = normalAddress(address);
  return a ? (index.get(a) ?? []) : [];
}

/**
 * Where the checks of `gateway` leave the route's host from: `'management'` when the controller
 * runs them (a host routeplane cannot watch, or the controller itself); else the host's
 * snapshot addresses on the gateway's subnet, or failing those its inventory address of the
 * gateway's family; null when none is known.
 */
export function checkSources(
  view: FleetView,
  routeHost: string,
  gateway: string,
): string[] | 'management' | null {
  const h = view.get(routeHost);
  const gw = normalAddress(gateway);
  if (!h || !gw) return null;
  if (!h.watched || h.local) return 'management';
  const g = ipaddr.parse(gw);
  const onLink = h.addresses
    .filter((a) => {
      if (kindOf(a.address) !== g.kind() || a.address === gw) return false;
      const net = ipaddr.parse(a.address);
      return g.match(net, a.prefixlen);
    })
    .map((a) => a.address);
  if (onLink.length > 0) return [...new Set(onLink)].sort();
  if (h.ansibleHost && kindOf(h.ansibleHost) === g.kind()) return [h.ansibleHost];
  return null;
}

const byKey = (a: CheckAccept) =>
  `${a.dst}|${a.protocol}|${String(a.port ?? 0).padStart(5, '0')}|${a.src_set ?? ''}|${a.src.join(',')}`;

/**
 * The input accepts each of `hosts` needs for the checks of the active candidate routes that
 * name one of its addresses: per gateway address and check (echo request, or TCP to a port),
 * one line from the checking points' addresses and one from management when the controller
 * checks it. Sorted, so the rendered table (and the module's comparison) is stable. A route's
 * own host is never its gateway's checker here (its own traffic is loopback).
 */
export function failoverAccepts(
  view: FleetView,
  routes: CandidateRoute[],
  hosts: Iterable<string>,
): Map<string, CheckAccept[]> {
  const owners = addressOwners(view, new Set(hosts));
  /** host -> key -> accept being built */
  const acc = new Map<string, Map<string, CheckAccept>>();
  const add = (host: string, base: Omit<CheckAccept, 'src'>, src: string[]) => {
    let mine = acc.get(host);
    if (!mine) acc.set(host, (mine = new Map()));
    const key = `${base.dst}|${base.protocol}|${base.port ?? ''}|${base.src_set ?? ''}`;
    const found = mine.get(key);
    if (found) found.src = [...new Set([...found.src, ...src])].sort();
    else mine.set(key, { ...base, src: [...new Set(src)].sort() });
  };
  for (const r of routes) {
    if (r.status !== 'active' || !r.failover) continue;
    for (const candidate of r.failover.candidates) {
      const dst = normalAddress(candidate);
      if (!dst) continue;
      const gateways = ownersOf(owners, dst).filter((h) => h !== r.host);
      if (gateways.length === 0) continue;
      const sources = checkSources(view, r.host, dst);
      if (sources === null) continue;
      const v6 = kindOf(dst) === 'ipv6';
      const family = v6 ? 'ip6' : 'ip';
      const srcSet = sources === 'management' ? (v6 ? 'mgmt6' : 'mgmt4') : null;
      const src = sources === 'management' ? [] : sources;
      for (const check of r.failover.healthCheck) {
        const protocol = check.type === 'tcp' ? 'tcp' : v6 ? 'icmpv6' : 'icmp';
        const port = check.type === 'tcp' ? check.port : null;
        if (check.type === 'tcp' && !(Number.isInteger(port) && port! > 0 && port! < 65536)) {
          continue;
        }
        for (const host of gateways) {
          add(host, { family, src_set: srcSet, dst, protocol, port }, src);
        }
      }
    }
  }
  return new Map(
    [...acc].map(([host, m]) => [
      host,
      [...m.values()].sort((a, b) => (byKey(a) < byKey(b) ? -1 : byKey(a) > byKey(b) ? 1 : 0)),
    ]),
  );
}

/** A forward chain policy as the template reads `routeplane_firewall_policy`. */
export function forwardPolicyOf(vars: Record<string, unknown>): 'accept' | 'drop' {
  const policy = vars.routeplane_firewall_policy;
  const forward =
    policy && typeof policy === 'object' ? (policy as Record<string, unknown>).forward : undefined;
  return forward === 'accept' ? 'accept' : 'drop';
}

/**
 * Whether an active forward accept lets traffic to `to` through: its destination is any, a set
 * or zone (known on the host only, so not judged), or a prefix holding the whole of `to`, in
 * the route's family. Its other matches (source, protocol, ports, interfaces) may narrow it:
 * an opening meant for the route still counts.
 */
export function forwardAcceptCovers(rule: FirewallRule, to: string, family: 4 | 6): boolean {
  if (rule.status !== 'active' || rule.chain !== 'forward' || rule.action !== 'accept') {
    return false;
  }
  if (rule.family === (family === 4 ? 'ip6' : 'ip')) return false;
  const dst = rule.match.dst;
  if (dst.length === 0 || dst.some((d) => d.startsWith('@'))) return true;
  let net: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    net = ipaddr.parseCIDR(to);
  } catch {
    return false;
  }
  return dst.some((p) => {
    try {
      const [pn, plen] = ipaddr.parseCIDR(p);
      return pn.kind() === net[0].kind() && plen <= net[1] && net[0].match(pn, plen);
    } catch {
      return false;
    }
  });
}

/**
 * Warnings for candidate routes whose gateway is a host of `gateways` (firewalls routeplane
 * manages) with a forward policy of drop and no active forward accept for the route's
 * destination: the traffic the route sends through it would be dropped there.
 */
export function forwardDropWarnings(
  view: FleetView,
  routes: CandidateRoute[],
  gateways: Map<string, GatewayFirewall>,
): string[] {
  const out: string[] = [];
  const owners = addressOwners(view, new Set(gateways.keys()));
  for (const r of routes) {
    if (!r.failover) continue;
    const said = new Set<string>();
    for (const candidate of r.failover.candidates) {
      for (const g of ownersOf(owners, candidate)) {
        if (g === r.host || said.has(g)) continue;
        const fw = gateways.get(g)!;
        if (fw.forwardPolicy !== 'drop') continue;
        if (fw.rules.some((rule) => forwardAcceptCovers(rule, r.to, r.family))) continue;
        said.add(g);
        out.push(
          `candidate gateway ${candidate} of route ${r.id} (${r.host} to ${r.to}) is ${g}, ` +
            `whose firewall routeplane manages with a forward policy of drop and no active ` +
            `forward accept for ${r.to}: traffic the route sends through ${g} would be dropped ` +
            `there (add a forward accept for ${r.to} on ${g})`,
        );
      }
    }
  }
  return out;
}

/** Route events that change what a route asks of its gateways' firewalls. */
const LIFECYCLE_ACTIONS = ['create', 'update', 'pause', 'resume', 'delete', 'activate', 'expire'];
const LIVE = ['pending', 'active', 'paused'];
/** A route's newest event among LIFECYCLE_ACTIONS (bound as one JSON parameter). */
const LAST_LIFECYCLE_EVENT = `(select max(e.id) from route_events e
    where e.route_id = r.id and e.action in (select jsonb_array_elements_text(?::jsonb)))`;
/** Route changes within this window are read as one (a run settles many routes at once). */
const COALESCE_MS = 50;

type Snapshot = { host: string; addresses: Address[] | string | null };

/**
 * The firewall side of route failover: which input accepts a managed gateway's table carries
 * for the checks of the candidate routes that name it (FirewallKind renders them), the
 * warnings for a gateway whose forward policy would drop a route's traffic, and the host work
 * a change of candidate routes owes their gateways.
 */
export class FailoverChecks {
  /** Per candidate route seen: its last lifecycle event handled and its candidates then. */
  private readonly seen = new Map<string, { eventId: number; candidates: string[] }>();
  /** Each checking host's addresses as last read (what its gateways' accepts follow). */
  private readonly lastAddresses = new Map<string, string>();
  private seeded: Promise<void> | null = null;
  private pending = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly d: {
      knex: Knex;
      inventory: InventorySource;
      firewall: Pick<FirewallStore, 'managedHosts' | 'liveOfHosts'>;
      work: Pick<HostWorkStore, 'bump'>;
      /** Active routes with candidate gateways (RoutesStore.candidateRoutes). */
      candidateRoutes: () => Promise<Route[]>;
      logger: Logger;
    },
  ) {}

  /** Per host, the addresses its last snapshot read (one statement, addresses only). */
  private async snapshotAddresses(hosts: string[]): Promise<Map<string, Address[]>> {
    if (hosts.length === 0) return new Map();
    const rows = await knexSql(this.d.knex)<Snapshot>(
      `select host, state->'addresses' as addresses from host_snapshots
        where host in (select jsonb_array_elements_text(?::jsonb))`,
      [JSON.stringify([...new Set(hosts)])],
    );
    return new Map(
      rows.map((r) => {
        const parsed = typeof r.addresses === 'string' ? JSON.parse(r.addresses) : r.addresses;
        return [r.host, Array.isArray(parsed) ? (parsed as Address[]) : []];
      }),
    );
  }

  /** The fleet as the decisions read it, with snapshot addresses for `withAddresses` only. */
  private async view(inv: Inventory, withAddresses: string[]): Promise<FleetView> {
    const snapshots = await this.snapshotAddresses(withAddresses.filter((h) => inv.hosts.has(h)));
    const view: FleetView = new Map();
    for (const [name, h] of inv.hosts) {
      const addresses = (snapshots.get(name) ?? []).flatMap((a) => {
        const address = normalAddress(a?.address);
        const prefixlen = Number(a?.prefixlen);
        if (!address || a.scope === 'host' || !Number.isInteger(prefixlen)) return [];
        return [{ address, prefixlen }];
      });
      view.set(name, {
        ansibleHost: normalAddress(h.vars.ansible_host ?? h.vars.ansible_ssh_host),
        addresses,
        watched: watchConnection(h).watched,
        local: h.local,
      });
    }
    return view;
  }

  /** The check accepts of each of `hosts` (FirewallKind renders them into managed tables). */
  async acceptsOf(hosts: string[]): Promise<Map<string, CheckAccept[]>> {
    if (hosts.length === 0) return new Map();
    const routes = await this.d.candidateRoutes();
    if (routes.length === 0) return new Map();
    const inv = await this.d.inventory.current();
    const view = await this.view(inv, [...hosts, ...routes.map((r) => r.host)]);
    return failoverAccepts(view, routes, hosts);
  }

  /**
   * Warnings for new or changed candidate routes: a candidate gateway whose firewall
   * routeplane manages drops forwarded traffic and has no forward accept for the route's
   * destination. Routes without candidates cost nothing.
   */
  async warnings(routes: Route[]): Promise<string[]> {
    const candidates = routes.filter((r) => r.failover);
    if (candidates.length === 0) return [];
    const managed = await this.d.firewall.managedHosts();
    if (managed.length === 0) return [];
    const inv = await this.d.inventory.current();
    const view = await this.view(inv, [...managed, ...candidates.map((r) => r.host)]);
    const owners = addressOwners(view, new Set(managed));
    const gatewayHosts = [
      ...new Set(
        candidates.flatMap((r) => r.failover!.candidates.flatMap((c) => ownersOf(owners, c))),
      ),
    ];
    return forwardDropWarnings(view, candidates, await this.gateways(inv, gatewayHosts));
  }

  /**
   * The candidate addresses (of `routes`) held by a managed host whose table has not been
   * applied since its last change: its check accepts may not be there yet, so a failed check
   * towards it says nothing of the gateway (failover-engine.ts holds such failures back).
   */
  async awaitingAccepts(routes: Route[]): Promise<Set<string>> {
    const candidates = routes.filter((r) => r.failover);
    if (candidates.length === 0) return new Set();
    const managed = await this.d.firewall.managedHosts();
    if (managed.length === 0) return new Set();
    const inv = await this.d.inventory.current();
    const view = await this.view(inv, managed);
    const owners = addressOwners(view, new Set(managed));
    const byOwner = new Map<string, string[]>();
    for (const address of new Set(candidates.flatMap((r) => r.failover!.candidates))) {
      for (const g of ownersOf(owners, address))
        byOwner.set(g, [...(byOwner.get(g) ?? []), address]);
    }
    if (byOwner.size === 0) return new Set();
    const behind = await knexSql(this.d.knex)<{ host: string }>(
      `select host from host_work
        where applied_gen < desired_gen and host in (select jsonb_array_elements_text(?::jsonb))`,
      [JSON.stringify([...byOwner.keys()])],
    );
    return new Set(behind.flatMap((r) => byOwner.get(r.host) ?? []));
  }

  /**
   * The preview's warnings for `host`: active candidate routes through it whose destination its
   * table (as the next apply renders it, managed or not yet) would drop in its forward chain.
   */
  async previewWarnings(host: string): Promise<string[]> {
    const routes = await this.d.candidateRoutes();
    if (routes.length === 0) return [];
    const inv = await this.d.inventory.current();
    if (!inv.hosts.has(host)) return [];
    const view = await this.view(inv, [host, ...routes.map((r) => r.host)]);
    return forwardDropWarnings(view, routes, await this.gateways(inv, [host]));
  }

  private async gateways(inv: Inventory, hosts: string[]): Promise<Map<string, GatewayFirewall>> {
    if (hosts.length === 0) return new Map();
    const rules = await this.d.firewall.liveOfHosts(hosts);
    return new Map(
      hosts.map((h) => [
        h,
        {
          forwardPolicy: forwardPolicyOf(inv.hosts.get(h)?.vars ?? {}),
          rules: rules.filter((r) => r.host === h),
        },
      ]),
    );
  }

  /**
   * Routes changed (RoutesStore.onChanged, after their commit): the firewall-managed hosts
   * holding a candidate gateway of a route whose lifecycle or candidates changed owe an apply,
   * their check accepts being different. Sync states and health decisions change nothing there
   * and bump nothing. Coalesced; after the commit, so a crash between the two leaves the
   * gateway to the next convergence.
   */
  routesChanged(ids: string[]): void {
    if (this.stopped) return;
    for (const id of ids) this.pending.add(id);
    this.timer ??= setTimeout(() => {
      this.timer = null;
      const batch = [...this.pending];
      this.pending = new Set();
      this.flushing = this.flushing
        .then(() => this.flush(batch))
        .catch((err: unknown) => {
          if (this.stopped) return;
          this.d.logger.warn(
            { event: 'firewall.failover_checks_failed', err },
            'could not bump the gateways of changed candidate routes',
          );
        });
    }, COALESCE_MS);
    this.timer.unref();
  }

  /**
   * A host's addresses as its watcher or a gather just read them. The accepts of the gateways
   * its candidate routes check were rendered from the host's addresses (the source on each
   * gateway's link): when those change, or first become known to this process, the managed
   * gateways owe an apply. A host without candidate routes, or unchanged, costs no query.
   */
  async addressesChanged(host: string, addresses: Address[]): Promise<void> {
    try {
      await this.followAddresses(host, addresses);
    } catch (err) {
      // Convergence re-renders the gateways anyway: a lost bump delays, never loses, them.
      this.d.logger.warn(
        { event: 'firewall.failover_sources_failed', host, err },
        'could not bump the gateways of a checking host whose addresses changed',
      );
    }
  }

  private async followAddresses(host: string, addresses: Address[]): Promise<void> {
    if (this.stopped) return;
    const now = JSON.stringify(addresses.map((a) => `${a.address}/${a.prefixlen}`).sort());
    if (this.lastAddresses.get(host) === now) return;
    this.lastAddresses.set(host, now);
    const routes = (await this.d.candidateRoutes()).filter((r) => r.host === host);
    if (routes.length === 0) return;
    const managed = await this.d.firewall.managedHosts();
    if (managed.length === 0) return;
    const inv = await this.d.inventory.current();
    const owners = addressOwners(await this.view(inv, managed), new Set(managed));
    const owed = new Set(
      routes.flatMap((r) => r.failover!.candidates.flatMap((c) => ownersOf(owners, c))),
    );
    owed.delete(host);
    if (owed.size === 0 || this.stopped) return;
    await this.d.knex.transaction((trx) => this.d.work.bump(trx, owed));
    this.d.logger.info(
      { event: 'firewall.failover_sources_changed', host, gateways: [...owed].sort() },
      'addresses of a checking host changed: its gateways re-render their check accepts',
    );
  }

  /** Drops what is pending and handles nothing more (shutdown). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending.clear();
  }

  /**
   * The live candidate routes' candidates as they stand, once: a later change of candidates
   * then also reaches the gateways it leaves. Their events count as not handled yet.
   */
  private seed(): Promise<void> {
    this.seeded ??= knexSql(this.d.knex)<{ id: string; candidates: unknown }>(
      `select r.id, r.failover->'candidates' as candidates from routes r
        where r.failover is not null and r.status in (select jsonb_array_elements_text(?::jsonb))`,
      [JSON.stringify(LIVE)],
    ).then(
      (rows) => {
        for (const r of rows) {
          if (!this.seen.has(r.id)) {
            this.seen.set(r.id, { eventId: -1, candidates: candidatesOf(r.candidates) });
          }
        }
      },
      () => undefined,
    );
    return this.seeded;
  }

  private async flush(ids: string[]): Promise<void> {
    if (ids.length === 0 || this.stopped) return;
    // No firewall routeplane manages, no gateway to tell: the routes are not read at all.
    const managed = await this.d.firewall.managedHosts();
    if (managed.length === 0) return;
    await this.seed();
    const known = ids.filter((id) => this.seen.has(id));
    const rows = await knexSql(this.d.knex)<{
      id: string;
      host: string;
      status: string;
      candidates: unknown;
      event_id: number | string | null;
    }>(
      `select r.id, r.host, r.status, r.failover->'candidates' as candidates,
              ${LAST_LIFECYCLE_EVENT} as event_id
         from routes r
        where r.id in (select (jsonb_array_elements_text(?::jsonb))::uuid)
          and (r.failover is not null
               or r.id in (select (jsonb_array_elements_text(?::jsonb))::uuid))`,
      [JSON.stringify(LIFECYCLE_ACTIONS), JSON.stringify(ids), JSON.stringify(known)],
    );
    const touched: { host: string; addresses: string[] }[] = [];
    for (const row of rows) {
      const eventId = row.event_id === null ? 0 : Number(row.event_id);
      const before = this.seen.get(row.id);
      if (before && before.eventId === eventId) continue;
      // A route that is gone (or no longer has candidates) is forgotten once its gateways
      // have been told: a later event of it (its removal settling) finds nothing to undo.
      const now = LIVE.includes(row.status) ? candidatesOf(row.candidates) : [];
      if (now.length > 0) this.seen.set(row.id, { eventId, candidates: now });
      else this.seen.delete(row.id);
      const addresses = [...new Set([...(before?.candidates ?? []), ...now])];
      if (addresses.length > 0) touched.push({ host: row.host, addresses });
    }
    if (touched.length === 0) return;
    const view = await this.view(await this.d.inventory.current(), managed);
    const owners = addressOwners(view, new Set(managed));
    const owed = new Set<string>();
    for (const t of touched) {
      for (const a of t.addresses) {
        for (const g of ownersOf(owners, a)) if (g !== t.host) owed.add(g);
      }
    }
    if (owed.size === 0 || this.stopped) return;
    await this.d.knex.transaction((trx) => this.d.work.bump(trx, owed));
    this.d.logger.debug(
      { event: 'firewall.failover_checks_bumped', hosts: [...owed].sort() },
      'gateways owe an apply for their candidate routes’ checks',
    );
  }
}

function candidatesOf(v: unknown): string[] {
  const list = typeof v === 'string' ? (JSON.parse(v) as unknown) : v;
  return Array.isArray(list) ? list.map(normalAddress).filter((a): a is string => a !== null) : [];
}
