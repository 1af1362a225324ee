import { describe, expect, it } from 'vitest';
import type { FirewallStore } from '../../../src/firewall/firewall-store.ts';
import { cutsManagement } from '../../../src/firewall/management-guard.ts';
import { parseRuleSpec, type RuleInput } from '../../../src/firewall/rule-input.ts';
import { SetService, visibleSets } from '../../../src/firewall/set-service.ts';
import type { FirewallSet, SetStore, SetType } from '../../../src/firewall/set-store.ts';
import type { RuleSpec } from '../../../src/firewall/types.ts';
import type { InventorySource } from '../../../src/hosts/inventory-source.ts';
import type { Inventory, InventoryHost } from '../../../src/hosts/inventory.ts';
import { ValidationError } from '../../../src/http/errors.ts';
import type { Reconciler } from '../../../src/reconciler/reconciler.ts';

const T = new Date('2030-01-01T00:00:00Z');

const set = (target: string, name: string, type: SetType, elements: string[]): FirewallSet => ({
  id: `${target}:${name}`,
  name,
  target,
  type,
  comment: null,
  elements,
  createdBy: 'ada',
  createdAt: T,
  updatedAt: T,
  deletedAt: null,
  deletedBy: null,
});

/** Live sets in memory, listed as SetStore.list lists them (by target, then name). */
class FakeSetStore {
  readonly listed: (string[] | undefined)[] = [];
  constructor(private readonly sets: FirewallSet[]) {}
  async list(targets?: string[]): Promise<FirewallSet[]> {
    this.listed.push(targets);
    return this.sets
      .filter((s) => !targets || targets.includes(s.target))
      .sort((a, b) => a.target.localeCompare(b.target) || a.name.localeCompare(b.name));
  }
}

const host = (name: string, groups: string[], vars: Record<string, unknown> = {}) =>
  [name, { name, groups, vars, local: false, localReason: null }] as [string, InventoryHost];

// h1 is in edge and web and has zones lan and wan; h2 is in edge only, with no zones.
const inventory: Inventory = {
  hosts: new Map([
    host('h1', ['edge', 'web'], { routeplane_zones: { lan: ['eth1'], wan: ['eth0'] } }),
    host('h2', ['edge']),
  ]),
  groups: new Map([
    ['all', ['h1', 'h2']],
    ['ungrouped', []],
    ['edge', ['h1', 'h2']],
    ['web', ['h1']],
  ]),
};
const source = { current: async () => inventory } as unknown as InventorySource;

function setup(sets: FirewallSet[]) {
  const store = new FakeSetStore(sets);
  const service = new SetService(
    { maxBatchItems: 1000, allowLocalWrites: false },
    store as unknown as SetStore,
    {} as FirewallStore,
    source,
    {} as Reconciler,
    async () => ({ sources: ['198.51.100.7'], sshPort: 22 }),
  );
  return { store, service };
}

const rule = (input: Omit<RuleInput, 'host' | 'chain' | 'action'>, h = 'h1'): RuleSpec =>
  parseRuleSpec({ host: h, chain: 'input', action: 'drop', ...input }, '/body/0');

/** The 400 a promise is refused with. */
async function refusal(p: Promise<unknown>): Promise<ValidationError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ValidationError);
  return err as ValidationError;
}

describe('visibleSets', () => {
  it('when a host and its group both define a name, then the host’s own set wins', async () => {
    const { store } = setup([
      set('edge', 'blocklist', 'address', ['192.0.2.0/24']),
      set('h1', 'blocklist', 'address', ['203.0.113.0/24']),
    ]);
    const seen = await visibleSets(store as unknown as SetStore, source, ['h1']);
    expect(seen.get('h1')!.get('blocklist')!.target).toBe('h1');
  });

  it('when a host is asked for, then it sees its groups’ sets but not another host’s or another group’s', async () => {
    const { store } = setup([
      set('edge', 'blocklist', 'address', []),
      set('web', 'web', 'port', ['80']),
      set('h1', 'mine', 'address', []),
    ]);
    const seen = await visibleSets(store as unknown as SetStore, source, ['h2']);
    expect([...seen.get('h2')!.keys()]).toEqual(['blocklist']);
  });

  it('when two of its groups define a name, then the first group in name order is rendered', async () => {
    const { store } = setup([
      set('web', 'blocklist', 'address', ['203.0.113.0/24']),
      set('edge', 'blocklist', 'address', ['192.0.2.0/24']),
    ]);
    const seen = await visibleSets(store as unknown as SetStore, source, ['h1']);
    expect(seen.get('h1')!.get('blocklist')!.target).toBe('edge');
  });

  it('when several hosts are asked for, then the store is read once for all their scopes', async () => {
    const { store } = setup([set('edge', 'blocklist', 'address', [])]);
    const seen = await visibleSets(store as unknown as SetStore, source, ['h1', 'h2']);
    expect(store.listed).toHaveLength(1);
    expect(store.listed[0]).toEqual(expect.arrayContaining(['edge', 'h1', 'h2', 'web']));
    expect([...seen.keys()]).toEqual(['h1', 'h2']);
  });

  it('when a set is made for the group all, then every host sees it', async () => {
    const { store } = setup([set('all', 'blocklist', 'address', ['192.0.2.0/24'])]);
    const seen = await visibleSets(store as unknown as SetStore, source, ['h1', 'h2']);
    expect(seen.get('h1')!.get('blocklist')?.target).toBe('all');
    expect(seen.get('h2')!.get('blocklist')?.target).toBe('all');
  });

  it('when a host is not in the inventory, then it sees only sets made for its name', async () => {
    const { store } = setup([set('edge', 'a', 'address', []), set('gone', 'b', 'address', [])]);
    const seen = await visibleSets(store as unknown as SetStore, source, ['gone']);
    expect([...seen.get('gone')!.keys()]).toEqual(['b']);
  });
});

describe('SetService.resolve', () => {
  it('when a rule names no set, then it is returned as it is and no set is read', async () => {
    const { store, service } = setup([]);
    const spec = rule({ src: ['192.0.2.0/24'] });
    expect(await service.resolve(spec, '/body/0')).toBe(spec);
    expect(store.listed).toEqual([]);
  });

  it('when a rule names an address set in src, then the resolved rule holds the set’s elements there', async () => {
    const { service } = setup([
      set('edge', 'blocklist', 'address', ['192.0.2.0/24', '2001:db8::/32']),
    ]);
    const spec = rule({ src: ['@blocklist'] });
    const out = await service.resolve(spec, '/body/0');
    expect(out).toEqual({
      ...spec,
      match: { ...spec.match, src: ['192.0.2.0/24', '2001:db8::/32'] },
    });
    expect(spec.match.src).toEqual(['@blocklist']);
  });

  it('when a rule names a port set in dport, then the resolved rule holds the set’s ports there', async () => {
    const { service } = setup([set('h1', 'web', 'port', ['443', '80'])]);
    const out = await service.resolve(rule({ protocol: 'tcp', dport: ['@web'] }), '/body/0');
    expect(out.match.dport).toEqual(['443', '80']);
  });

  it('when the host and its group both define the name, then the host’s own set is used', async () => {
    const { service } = setup([
      set('edge', 'blocklist', 'address', ['192.0.2.0/24']),
      set('h1', 'blocklist', 'address', ['203.0.113.0/24']),
    ]);
    const out = await service.resolve(rule({ src: ['@blocklist'] }), '/body/0');
    expect(out.match.src).toEqual(['203.0.113.0/24']);
  });

  it('when the set is unknown to the host, then it is a 400 on <base>/src', async () => {
    const { service } = setup([set('h2', 'blocklist', 'address', [])]);
    const err = await refusal(service.resolve(rule({ src: ['@blocklist'] }), '/body/0'));
    expect(err.status).toBe(400);
    expect(err.fields).toEqual([
      {
        field: '/body/0/src',
        message: "no set 'blocklist' for host 'h1' (its own or its groups'): create it first",
      },
    ]);
  });

  it('when a port set is named in src, then it is a 400 on <base>/src naming the set', async () => {
    const { service } = setup([set('h1', 'web', 'port', ['80'])]);
    const err = await refusal(service.resolve(rule({ src: ['@web'] }), '/body/0'));
    expect(err.status).toBe(400);
    expect(err.fields.map((f) => f.field)).toEqual(['/body/0/src']);
    expect(err.fields[0]!.message).toMatch(/^set 'web' holds port/);
  });

  it('when a port set is named in src, then the message says it holds ports, not addresses', async () => {
    const { service } = setup([set('h1', 'web', 'port', ['80'])]);
    const err = await refusal(service.resolve(rule({ src: ['@web'] }), '/body/0'));
    expect(err.fields[0]!.message).toBe("set 'web' holds ports, not addresses");
  });

  it('when an address set is named in dport, then it is a 400: it holds addresses, not ports', async () => {
    const { service } = setup([set('h1', 'blocklist', 'address', ['192.0.2.0/24'])]);
    const err = await refusal(
      service.resolve(rule({ protocol: 'tcp', dport: ['@blocklist'] }), '/body/0'),
    );
    expect(err.fields).toEqual([
      { field: '/body/0/dport', message: "set 'blocklist' holds addresses, not ports" },
    ]);
  });

  it('when two of the host’s groups both define the name, then it is a 400 naming both groups', async () => {
    const { service } = setup([
      set('edge', 'blocklist', 'address', ['192.0.2.0/24']),
      set('web', 'blocklist', 'address', ['203.0.113.0/24']),
    ]);
    const err = await refusal(service.resolve(rule({ src: ['@blocklist'] }), '/body/0'));
    expect(err.fields).toEqual([
      {
        field: '/body/0/src',
        message:
          "set 'blocklist' is defined by several groups of 'h1' (edge, web): define it for the host, or rename one",
      },
    ]);
  });

  it('when two groups define the name but the host has its own, then the host’s set is used', async () => {
    const { service } = setup([
      set('edge', 'blocklist', 'address', ['192.0.2.0/24']),
      set('web', 'blocklist', 'address', ['203.0.113.0/24']),
      set('h1', 'blocklist', 'address', ['198.18.0.0/15']),
    ]);
    const out = await service.resolve(rule({ src: ['@blocklist'] }), '/body/0');
    expect(out.match.src).toEqual(['198.18.0.0/15']);
  });

  it('when the zone is not in the host’s routeplane_zones, then it is a 400 on the field', async () => {
    const { service } = setup([]);
    const err = await refusal(service.resolve(rule({ dst: ['@zone:dmz'] }), '/body/0'));
    expect(err.fields).toEqual([
      {
        field: '/body/0/dst',
        message: "host 'h1' has no zone 'dmz' (routeplane_zones in the inventory)",
      },
    ]);
  });

  it('when the host has no routeplane_zones at all, then any zone is a 400', async () => {
    const { service } = setup([]);
    const err = await refusal(service.resolve(rule({ src: ['@zone:lan'] }, 'h2'), '/body/0'));
    expect(err.fields.map((f) => f.field)).toEqual(['/body/0/src']);
  });

  it('when the zone is one of the host’s, then the reference is left in place (known on the host only)', async () => {
    const { service } = setup([]);
    const out = await service.resolve(rule({ src: ['@zone:lan'] }), '/body/0');
    expect(out.match.src).toEqual(['@zone:lan']);
  });

  it('when an inventory is passed, then its zones are the ones checked', async () => {
    const { service } = setup([]);
    const other: Inventory = {
      hosts: new Map([host('h1', [], { routeplane_zones: { dmz: ['eth2'] } })]),
      groups: new Map(),
    };
    const out = await service.resolve(rule({ src: ['@zone:dmz'] }), '/body/0', other);
    expect(out.match.src).toEqual(['@zone:dmz']);
  });

  it('when a drop rule names an empty address set, then the resolved rule is judged no cut', async () => {
    const { service } = setup([set('h1', 'blocklist', 'address', [])]);
    const out = await service.resolve(rule({ src: ['@blocklist'] }), '/body/0');
    expect(cutsManagement(out, { sources: ['198.51.100.7'], sshPort: 22 })).toBeNull();
  });
});
