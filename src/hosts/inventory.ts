import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

export interface InventoryHost {
  name: string;
  /** Every group the host belongs to, directly or through a child group (Ansible's group_names). */
  groups: string[];
  /** The host's variables as Ansible resolves them (host_vars over group_vars, by depth). */
  vars: Record<string, unknown>;
  /** Whether the host is (or may be) the machine routeplane runs on. */
  local: boolean;
  /** Why it counts as the controller; null when it does not. */
  localReason: string | null;
}

export interface Inventory {
  hosts: Map<string, InventoryHost>;
  /** Every group name (including `all` and `ungrouped`) and the hosts it contains. */
  groups: Map<string, string[]>;
}

export class InventoryError extends Error {
  override name = 'InventoryError';
}

/** What the controller is: its own addresses and names, for telling a host is the controller. */
export interface ControllerIdentity {
  addresses: Set<string>;
  /** Names that resolve to the controller (its hostname, /etc/hosts entries for its addresses). */
  names: Set<string>;
}

const LOCAL_CONNECTIONS = new Set(['local', 'ansible.builtin.local', 'ansible.legacy.local']);
/** Variables that decide where and as whom a run connects, with their legacy spellings. */
const CONNECTION_VARS = [
  'ansible_connection',
  'ansible_host',
  'ansible_ssh_host',
  'ansible_port',
  'ansible_ssh_port',
  'ansible_user',
  'ansible_ssh_user',
];

const isTemplate = (v: unknown) => typeof v === 'string' && /\{\{|\{%|\{#/.test(v);

/** An address literal in one spelling (IPv4-mapped as IPv4), or null for a name. */
function normalAddress(text: string): string | null {
  const bare = text.replace(/^\[|\]$/g, '').split('%')[0]!;
  return isIP(bare) ? ipaddr.process(bare).toString() : null;
}

/** Normalised form of every address in `list`, for comparing with a host's ansible_host. */
export function addressSet(list: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const a of list) {
    const n = normalAddress(a);
    if (n) out.add(n);
  }
  return out;
}

/**
 * Why a host is the controller, or null. Guarded when unknowable: a connection variable that is
 * itself a template could resolve to anything at run time, so it is treated as local.
 */
export function controllerReason(
  name: string,
  vars: Record<string, unknown>,
  me: ControllerIdentity,
): string | null {
  for (const v of CONNECTION_VARS) {
    if (isTemplate(vars[v])) return `${v} is a template, so where it connects is unknowable`;
  }
  const connection = vars.ansible_connection;
  if (typeof connection === 'string' && LOCAL_CONNECTIONS.has(connection)) {
    return `ansible_connection is ${connection}`;
  }
  const target = String(vars.ansible_host ?? vars.ansible_ssh_host ?? name).toLowerCase();
  const address = normalAddress(target);
  if (address) {
    const parsed = ipaddr.parse(address);
    if (parsed.range() === 'loopback' || parsed.range() === 'unspecified') {
      return `it connects to ${target}, a loopback address`;
    }
    if (me.addresses.has(address)) return `it connects to ${target}, an address of this machine`;
    return null;
  }
  if (target === 'localhost' || target.endsWith('.localhost')) {
    return `it connects to ${target}, this machine`;
  }
  if (me.names.has(target)) return `it connects to ${target}, a name of this machine`;
  return null;
}

interface ListedGroup {
  hosts?: string[];
  children?: string[];
}

/**
 * Builds the fleet from `ansible-inventory --list`: Ansible has parsed the source (INI, YAML,
 * ranges, host_vars/ and group_vars/, plugins) and merged each host's variables, so what
 * routeplane shows and guards is exactly what a run will use.
 */
export function inventoryFromAnsibleList(listed: unknown, me: ControllerIdentity): Inventory {
  if (!listed || typeof listed !== 'object') {
    throw new InventoryError('ansible-inventory printed no inventory');
  }
  const doc = listed as Record<string, unknown> & {
    _meta?: { hostvars?: Record<string, Record<string, unknown>> };
  };
  const hostvars = doc._meta?.hostvars ?? {};
  const direct = new Map<string, ListedGroup>();
  for (const [group, node] of Object.entries(doc)) {
    if (group === '_meta') continue;
    direct.set(group, (node ?? {}) as ListedGroup);
  }
  // A group without hosts or children is only named in its parent's children.
  for (const node of [...direct.values()]) {
    for (const child of node.children ?? []) if (!direct.has(child)) direct.set(child, {});
  }
  const members = new Map<string, Set<string>>();
  for (const group of direct.keys()) {
    const set = new Set<string>();
    const seen = new Set([group]);
    const queue = [group];
    while (queue.length > 0) {
      const node = direct.get(queue.shift()!) ?? {};
      for (const h of node.hosts ?? []) set.add(h);
      for (const child of node.children ?? []) {
        if (seen.has(child)) continue;
        seen.add(child);
        queue.push(child);
      }
    }
    members.set(group, set);
  }
  const all = members.get('all') ?? new Set<string>();
  for (const h of Object.keys(hostvars)) all.add(h);
  for (const set of members.values()) for (const h of set) all.add(h);
  members.set('all', all);
  if (!members.has('ungrouped')) members.set('ungrouped', new Set());

  const hosts = new Map<string, InventoryHost>();
  for (const name of all) {
    const vars = hostvars[name] ?? {};
    const groups = [...members]
      .filter(([g, set]) => g !== 'all' && g !== 'ungrouped' && set.has(name))
      .map(([g]) => g)
      .sort();
    const reason = controllerReason(name, vars, me);
    hosts.set(name, { name, groups, vars, local: reason !== null, localReason: reason });
  }
  return {
    hosts,
    groups: new Map([...members].map(([g, set]) => [g, [...set].sort()])),
  };
}

const isVaulted = (v: unknown): boolean =>
  (typeof v === 'string' && v.includes('$ANSIBLE_VAULT')) ||
  (v !== null && typeof v === 'object' && !Array.isArray(v) && '__ansible_vault' in v);

/** A copy of `v` without vaulted values at any depth. */
function withoutVaulted(v: unknown): unknown {
  if (Array.isArray(v)) return v.filter((x) => !isVaulted(x)).map(withoutVaulted);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v)
        .filter(([, x]) => !isVaulted(x))
        .map(([k, x]) => [k, withoutVaulted(x)]),
    );
  }
  return v;
}

/** The variables anyone may see of a host, whatever else the inventory holds. */
const PUBLIC_BY_DEFAULT = ['ansible_host', 'ansible_port', 'ansible_user'];

/**
 * Inventory vars safe to show: an allowlist, never a denylist. Address, port and user, plus the
 * keys the operator lists in `routeplane_public_vars`; keys, passwords, SSH arguments and
 * everything else stay on the server, and vaulted values are dropped at any depth.
 */
export function publicVars(vars: Record<string, unknown>): Record<string, unknown> {
  const listed = Array.isArray(vars.routeplane_public_vars)
    ? vars.routeplane_public_vars.filter((k): k is string => typeof k === 'string')
    : [];
  const out: Record<string, unknown> = {};
  for (const key of [...PUBLIC_BY_DEFAULT, ...listed]) {
    // Listing a connection variable (a key file, SSH arguments, a password) publishes nothing.
    const connection = key.startsWith('ansible_') && !PUBLIC_BY_DEFAULT.includes(key);
    if (connection || key === 'routeplane_public_vars' || !(key in vars)) continue;
    if (isVaulted(vars[key])) continue;
    out[key] = withoutVaulted(vars[key]);
  }
  return out;
}

/** Expands names (hosts or groups) to inventory hosts; returns the names that match nothing. */
export function resolveTargets(
  inv: Inventory,
  names: string[],
): { hosts: string[]; unknown: string[] } {
  const hosts = new Set<string>();
  const unknown: string[] = [];
  for (const n of names) {
    if (inv.hosts.has(n)) hosts.add(n);
    else if (inv.groups.has(n)) for (const h of inv.groups.get(n)!) hosts.add(h);
    else unknown.push(n);
  }
  return { hosts: [...hosts].sort(), unknown };
}
