import { randomUUID } from 'node:crypto';
import type { Actor } from '../auth/roles.ts';
import type { Config } from '../config.ts';
import type { InventorySource } from '../hosts/inventory-source.ts';
import type { Inventory } from '../hosts/inventory.ts';
import { resolveTargets } from '../hosts/inventory.ts';
import { writeTargets } from '../hosts/write-targets.ts';
import { ConflictError, NotFoundError, ValidationError } from '../http/errors.ts';
import type { Reconciler, Settlement } from '../reconciler/reconciler.ts';
import type { FirewallStore } from './firewall-store.ts';
import { cutsManagement, type Management } from './management-guard.ts';
import { refOf, type SetRef } from './rule-input.ts';
import { parseElements } from './set-input.ts';
import type { FirewallSet, SetStore, SetType } from './set-store.ts';
import type { RuleSpec } from './types.ts';

export interface SetInput {
  name: string;
  host: string;
  type: SetType;
  elements?: string[];
  comment?: string | null;
}

/** How a write of a set ended on the hosts that hold it. */
export interface SetApply {
  settlement: Settlement;
  hosts: { host: string; error: string | null; runId: string | null }[];
}

const MATCH_FIELDS = ['src', 'dst', 'sport', 'dport'] as const;

const PLURAL: Record<SetType, string> = { address: 'addresses', port: 'ports' };

/** A host's zones (`routeplane_zones`: zone name -> interfaces), from the inventory. */
export function zonesOf(inv: Inventory, host: string): Set<string> {
  const zones = inv.hosts.get(host)?.vars.routeplane_zones;
  return new Set(zones && typeof zones === 'object' ? Object.keys(zones) : []);
}

/**
 * The sets each host's rules resolve `@name` to: the host's own set of that name, else its
 * groups' (a name two of its groups share is refused when a rule names it; rendered, the
 * first group in name order wins).
 */
export async function visibleSets(
  store: SetStore,
  inventory: InventorySource,
  hosts: string[],
): Promise<Map<string, Map<string, FirewallSet>>> {
  const inv = await inventory.current();
  const scopes = new Map(hosts.map((h) => [h, scopeOf(inv, h)]));
  const sets = await store.list([...new Set([...scopes.values()].flat())]);
  return new Map(hosts.map((h) => [h, visibleIn(scopes.get(h)!, sets)]));
}

/** Where a host's sets come from, first wins: itself, its groups, then `all`. */
function scopeOf(inv: Inventory, host: string): string[] {
  // A host's groups (Ansible's group_names) never list `all`, which holds every host.
  return [host, ...(inv.hosts.get(host)?.groups ?? []), 'all'];
}

/** Of these sets, the one each name resolves to within a scope (its first target wins). */
function visibleIn(scope: string[], sets: FirewallSet[]): Map<string, FirewallSet> {
  const seen = new Map<string, FirewallSet>();
  for (const target of scope) {
    for (const s of sets) if (s.target === target && !seen.has(s.name)) seen.set(s.name, s);
  }
  return seen;
}

type ServiceConfig = Pick<Config, 'maxBatchItems' | 'allowLocalWrites'>;

/**
 * Firewall sets: named addresses or ports for a host or a group, which rules name as `@name`.
 * A host sees its own sets and its groups' (its own first); a change to a set's elements is
 * applied to every member whose firewall routeplane manages.
 */
export class SetService {
  constructor(
    private readonly config: ServiceConfig,
    private readonly store: SetStore,
    private readonly rules: FirewallStore,
    private readonly inventory: InventorySource,
    private readonly reconciler: Reconciler,
    private readonly managementOf: (host: string) => Promise<Management>,
  ) {}

  visibleTo(hosts: string[]): Promise<Map<string, Map<string, FirewallSet>>> {
    return visibleSets(this.store, this.inventory, hosts);
  }

  /**
   * The rule with every set it names replaced by the set's elements (what the management
   * guard judges), or a 400 on the field naming an unknown set or zone, a set of the wrong
   * type, or a name two of the host's groups both define.
   */
  async resolve(spec: RuleSpec, base: string, inv?: Inventory): Promise<RuleSpec> {
    const refs = MATCH_FIELDS.map((f) => [f, refOf(spec.match[f])] as const).filter(
      (r): r is readonly [(typeof MATCH_FIELDS)[number], SetRef] => r[1] !== null,
    );
    if (refs.length === 0) return spec;
    const inventory = inv ?? (await this.inventory.current());
    // One read of every set the host could see: resolution and ambiguity both come from it.
    const scope = scopeOf(inventory, spec.host);
    const sets = await this.store.list(scope);
    const visible = visibleIn(scope, sets);
    const match = { ...spec.match };
    for (const [field, ref] of refs) {
      const at = `${base}/${field}`;
      if (ref.kind === 'zone') {
        if (!zonesOf(inventory, spec.host).has(ref.name)) {
          throw ValidationError.field(
            at,
            `host '${spec.host}' has no zone '${ref.name}' (routeplane_zones in the inventory)`,
          );
        }
        continue;
      }
      const set = visible.get(ref.name);
      if (!set) {
        throw ValidationError.field(
          at,
          `no set '${ref.name}' for host '${spec.host}' (its own or its groups'): create it first`,
        );
      }
      if (set.target !== spec.host) {
        const groups = scope.slice(1, -1);
        const holders = sets
          .filter((s) => s.name === ref.name && groups.includes(s.target))
          .map((s) => s.target);
        if (holders.length > 1) {
          throw ValidationError.field(
            at,
            `set '${ref.name}' is defined by several groups of '${spec.host}' (${holders.join(', ')}): define it for the host, or rename one`,
          );
        }
      }
      const wanted: SetType = field === 'src' || field === 'dst' ? 'address' : 'port';
      if (set.type !== wanted) {
        throw ValidationError.field(
          at,
          `set '${ref.name}' holds ${PLURAL[set.type]}, not ${PLURAL[wanted]}`,
        );
      }
      // An empty set matches nothing, but an empty match means any: the reference stays,
      // which the guard leaves unjudged.
      if (set.elements.length > 0) match[field] = set.elements;
    }
    return { ...spec, match };
  }

  private async membersOf(target: string): Promise<string[]> {
    return resolveTargets(await this.inventory.current(), [target]).hosts;
  }

  /** Members whose firewall routeplane manages: the hosts a change must reach. */
  private async managedMembers(target: string): Promise<string[]> {
    const members = await this.membersOf(target);
    const managed = await this.rules.managed(members);
    return members.filter((h) => managed.get(h) === true);
  }

  async create(input: SetInput, actor: Actor): Promise<FirewallSet> {
    const inv = await this.inventory.current();
    writeTargets([{ input, base: '/body' }], inv, this.config, {
      objects: 'set members',
      managed: 'its firewall',
    });
    const elements = parseElements(input.elements ?? [], input.type, '/body/elements');
    this.checkSize(elements.length);
    try {
      return await this.store.create(
        {
          id: randomUUID(),
          name: input.name,
          target: input.host,
          type: input.type,
          comment: input.comment ?? null,
        },
        elements,
        actor.name,
        await this.managedMembers(input.host),
      );
    } catch (err) {
      if ((err as { code?: string }).code === '23505') {
        throw new ConflictError(`a set named '${input.name}' already exists for '${input.host}'`, {
          name: input.name,
          host: input.host,
        });
      }
      throw err;
    }
  }

  private checkSize(n: number): void {
    if (n > this.config.maxBatchItems) {
      throw ValidationError.field(
        '/body/elements',
        `${n} elements in one request; at most MAX_BATCH_ITEMS (${this.config.maxBatchItems})`,
      );
    }
  }

  async get(id: string): Promise<FirewallSet> {
    const set = await this.store.get(id);
    if (!set) throw new NotFoundError(`Set ${id} not found`);
    return set;
  }

  private async live(id: string): Promise<FirewallSet> {
    const set = await this.get(id);
    if (set.deletedAt) throw new ConflictError(`Set ${id} was deleted`, { set_id: id });
    return set;
  }

  /** Live sets: all, those of one target, or those a host sees (its own and its groups'). */
  async list(f: { host?: string; target?: string }): Promise<FirewallSet[]> {
    if (f.host) return [...((await this.visibleTo([f.host])).get(f.host)?.values() ?? [])];
    return this.store.list(f.target ? [f.target] : undefined);
  }

  async events(id: string) {
    await this.get(id);
    return this.store.events(id);
  }

  /** Live rules that name this set on the hosts that see it. */
  private async users(set: FirewallSet): Promise<{ id: string; spec: RuleSpec }[]> {
    const members = await this.membersOf(set.target);
    const visible = await this.visibleTo(members);
    const holders = members.filter((h) => visible.get(h)?.get(set.name)?.id === set.id);
    return this.rules.liveNaming(holders, `@${set.name}`);
  }

  /**
   * Adds elements. Refused (409) when a rule that names the set would then cut routeplane
   * off from its host (a blocklist gaining the controller's address).
   */
  async add(id: string, values: string[], actor: Actor): Promise<FirewallSet> {
    const set = await this.live(id);
    const elements = parseElements(values, set.type, '/body/elements');
    this.checkSize(elements.length);
    const after = [...new Set([...set.elements, ...elements])].sort();
    for (const user of await this.users(set)) {
      const spec = await this.resolve(user.spec, '/body');
      const match = { ...spec.match };
      for (const f of MATCH_FIELDS) {
        if (user.spec.match[f][0] === `@${set.name}` && after.length > 0) match[f] = after;
      }
      const management = await this.managementOf(user.spec.host);
      const cut = cutsManagement({ ...spec, match }, management);
      if (cut) {
        throw new ConflictError(
          `refused: with these elements rule ${user.id} on ${user.spec.host} would cut management: ${cut}`,
          { rule_id: user.id, host: user.spec.host, management_sources: management.sources },
        );
      }
    }
    return this.change(set, 'add', elements, actor);
  }

  async remove(id: string, values: string[], actor: Actor): Promise<FirewallSet> {
    const set = await this.live(id);
    return this.change(set, 'remove', parseElements(values, set.type, '/query/element'), actor);
  }

  private async change(
    set: FirewallSet,
    action: 'add' | 'remove',
    elements: string[],
    actor: Actor,
  ): Promise<FirewallSet> {
    const hosts = await this.managedMembers(set.target);
    const done = await this.store.change(set.id, action, elements, actor.name, hosts);
    if (!done) throw new ConflictError(`Set ${set.id} was deleted`, { set_id: set.id });
    return done.set;
  }

  /** Deletes a set no live rule names (409 with their ids otherwise). */
  async delete(id: string, actor: Actor): Promise<FirewallSet> {
    const set = await this.live(id);
    const users = await this.users(set);
    if (users.length > 0) {
      throw new ConflictError(
        `set '${set.name}' is named by ${users.length} live rule(s); delete them first`,
        { set_id: id, rule_ids: users.map((u) => u.id).slice(0, 100) },
      );
    }
    if (!(await this.store.delete(id, actor.name, await this.managedMembers(set.target)))) {
      throw new ConflictError(`Set ${id} was deleted`, { set_id: id });
    }
    return this.get(id);
  }

  /**
   * Waits up to `ms` for the runs that carry a change of this set to its managed members,
   * then says how each ended.
   */
  async waitForKernel(set: FirewallSet, ms: number): Promise<SetApply> {
    const hosts = await this.managedMembers(set.target);
    const settlement = await this.reconciler.waitForKernel(hosts, ms);
    const failures = settlement.settled ? await this.rules.lastFailures(hosts) : new Map();
    const out: SetApply['hosts'] = hosts.map((host) => {
      const failed = failures.get(host);
      return {
        host,
        error: failed?.error ?? null,
        runId: failed?.runId ?? settlement.runIds.get(host) ?? null,
      };
    });
    return { settlement, hosts: out };
  }
}
