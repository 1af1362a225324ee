import { readFile } from 'node:fs/promises';
import { CORE_SCHEMA, defineScalarTag, load } from 'js-yaml';

export interface InventoryHost {
  name: string;
  groups: string[];
  /** Host vars merged over the vars of its groups (outermost first), as Ansible resolves them. */
  vars: Record<string, unknown>;
  local: boolean;
}

export interface Inventory {
  hosts: Map<string, InventoryHost>;
  /** Every group name (including `all` and `ungrouped`) and the hosts it contains. */
  groups: Map<string, string[]>;
}

export class InventoryError extends Error {
  override name = 'InventoryError';
}

type Node = {
  hosts?: Record<string, unknown> | null;
  children?: Record<string, unknown> | null;
  vars?: Record<string, unknown> | null;
};

function asRecord(value: unknown, where: string): Record<string, unknown> {
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InventoryError(`${where} must be a mapping`);
  }
  return value as Record<string, unknown>;
}

// Ansible's own YAML tags: an inline-vaulted value (kept opaque, and never shown: publicVars
// drops `__ansible_vault`), and a string Ansible must not template. Without them a single
// `!vault` value made the whole inventory unreadable.
const ANSIBLE_SCHEMA = CORE_SCHEMA.withTags(
  defineScalarTag('!vault', {
    resolve: (source) => ({ __ansible_vault: source }),
    identify: () => false,
  }),
  defineScalarTag('!unsafe', { resolve: (source) => source, identify: () => false }),
);

/**
 * Parses an Ansible YAML inventory (the `all:` / `hosts:` / `children:` / `vars:` format).
 * routeplane reads it itself, rather than shelling out to ansible-inventory, so listing the
 * fleet costs no process and works where ansible is not installed yet.
 */
export function parseInventory(text: string): Inventory {
  const doc = asRecord(load(text, { schema: ANSIBLE_SCHEMA }), 'inventory');
  const hostVars = new Map<string, Record<string, unknown>>();
  const hostGroups = new Map<string, Set<string>>();
  const groupHosts = new Map<string, Set<string>>();
  // Ansible merges group vars by group depth (all = 0, its children 1, ...), then by name, so
  // a child's vars win over its parents' whichever of a host's groups is read last.
  const groupVars = new Map<string, { depth: number; vars: Record<string, unknown> }>();
  const hostAncestry = new Map<string, Set<string>>();

  const visit = (group: string, node: Node, chain: string[]): Set<string> => {
    const vars = asRecord(node.vars, `group ${group} vars`);
    const seen = groupVars.get(group);
    groupVars.set(group, {
      depth: Math.max(
        seen?.depth ?? 0,
        group === 'all' ? 0 : chain.length + (chain[0] === 'all' ? 0 : 1),
      ),
      vars: { ...(seen?.vars ?? {}), ...vars },
    });
    const myChain = [...chain, group];
    const members = groupHosts.get(group) ?? new Set<string>();
    groupHosts.set(group, members);
    for (const [name, hv] of Object.entries(asRecord(node.hosts, `group ${group} hosts`))) {
      members.add(name);
      hostVars.set(name, { ...(hostVars.get(name) ?? {}), ...asRecord(hv, `host ${name}`) });
      const groups = hostGroups.get(name) ?? new Set<string>();
      groups.add(group);
      hostGroups.set(name, groups);
      hostAncestry.set(name, new Set([...(hostAncestry.get(name) ?? []), ...myChain]));
    }
    for (const [child, childNode] of Object.entries(
      asRecord(node.children, `group ${group} children`),
    )) {
      for (const h of visit(child, asRecord(childNode, `group ${child}`) as Node, myChain))
        members.add(h);
    }
    return members;
  };

  for (const [group, node] of Object.entries(doc)) {
    visit(group, asRecord(node, `group ${group}`) as Node, []);
  }
  const all = groupHosts.get('all') ?? new Set<string>();
  for (const h of hostVars.keys()) all.add(h);
  groupHosts.set('all', all);
  const ungrouped = [...hostVars.keys()].filter((h) =>
    [...(hostGroups.get(h) ?? [])].every((g) => g === 'all' || g === 'ungrouped'),
  );
  groupHosts.set('ungrouped', new Set(ungrouped));

  const hosts = new Map<string, InventoryHost>();
  for (const [name, own] of hostVars) {
    const ordered = [...(hostAncestry.get(name) ?? []), 'all']
      .filter((g, i, list) => list.indexOf(g) === i && groupVars.has(g))
      .map((g) => ({ name: g, ...groupVars.get(g)! }))
      // by code point, as Python compares the names, not by locale
      .sort((a, b) => a.depth - b.depth || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const vars = Object.assign({}, ...ordered.map((g) => g.vars), own) as Record<string, unknown>;
    const groups = [...(hostGroups.get(name) ?? [])]
      .filter((g) => g !== 'all' && g !== 'ungrouped')
      .sort();
    hosts.set(name, { name, groups, vars, local: vars.ansible_connection === 'local' });
  }
  return {
    hosts,
    groups: new Map([...groupHosts].map(([g, m]) => [g, [...m].sort()])),
  };
}

export async function readInventory(file: string): Promise<Inventory> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InventoryError(`cannot read inventory ${file}: ${(err as Error).message}`);
  }
  return parseInventory(text);
}

const SECRET_KEY = /pass|secret|token|private_key|become_pass|vault|credential|api_key/i;

/** Inventory vars safe to show: no credentials, no vaulted values. */
export function publicVars(vars: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(vars).filter(([k, v]) => {
      if (SECRET_KEY.test(k)) return false;
      if (typeof v === 'string' && v.includes('$ANSIBLE_VAULT')) return false;
      if (v && typeof v === 'object' && '__ansible_vault' in v) return false;
      return true;
    }),
  );
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
