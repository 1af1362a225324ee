import { describe, expect, it } from 'vitest';
import { FirewallKind, templateRule } from '../../../src/firewall/firewall-kind.ts';
import type { FirewallStore } from '../../../src/firewall/firewall-store.ts';
import { parseRuleSpec, type RuleInput } from '../../../src/firewall/rule-input.ts';
import type { FirewallSet, SetType } from '../../../src/firewall/set-store.ts';
import type { FirewallRule } from '../../../src/firewall/types.ts';

const T = new Date('2030-01-01T00:00:00Z');
const ROUTE_A = 'a0000000-0000-4000-8000-00000000000a';
const ROUTE_B = 'a0000000-0000-4000-8000-00000000000b';

let seq = 0;
/** A stored rule: the parsed spec of `input` on h1, active, unless `extra` says otherwise. */
function stored(
  input: Omit<RuleInput, 'host'> & { host?: string },
  extra: Partial<FirewallRule> = {},
): FirewallRule {
  seq += 1;
  return {
    ...parseRuleSpec({ host: 'h1', ...input }, '/body'),
    id: `r0000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    comment: null,
    routeId: null,
    createAt: null,
    deleteAt: null,
    status: 'active',
    sync: { state: 'applying', error: null, retryAt: null, syncedAt: null, lastRunId: null },
    createdBy: 'ada',
    createdAt: T,
    updatedAt: T,
    removedAt: null,
    removedReason: null,
    removedBy: null,
    ...extra,
  };
}

const set = (name: string, type: SetType, elements: string[]): FirewallSet => ({
  id: `h1:${name}`,
  name,
  target: 'h1',
  type,
  comment: null,
  elements,
  createdBy: 'ada',
  createdAt: T,
  updatedAt: T,
  deletedAt: null,
  deletedBy: null,
});

/** The store's answers in memory: which hosts are managed, their rules, the active routes. */
class FakeFirewallStore {
  readonly managedHosts = new Map<string, boolean>();
  readonly rows = new Map<string, FirewallRule[]>();
  readonly active = new Set<string>();
  readonly askedRoutes: string[][] = [];
  async managed(hosts: string[]): Promise<Map<string, boolean>> {
    return new Map([...this.managedHosts].filter(([h]) => hosts.includes(h)));
  }
  async settleable(hosts: string[]): Promise<Map<string, FirewallRule[]>> {
    return new Map(hosts.map((h) => [h, this.rows.get(h) ?? []]));
  }
  async activeRoutes(ids: string[]): Promise<Set<string>> {
    this.askedRoutes.push(ids);
    return new Set(ids.filter((id) => this.active.has(id)));
  }
}

function setup(rules: FirewallRule[], sets: FirewallSet[] = [], confirmS = 30) {
  const store = new FakeFirewallStore();
  store.managedHosts.set('h1', true);
  store.rows.set('h1', rules);
  const kind = new FirewallKind(store as unknown as FirewallStore, confirmS, async (hosts) => {
    return new Map(hosts.map((h) => [h, new Map(sets.map((s) => [s.name, s]))]));
  });
  return { store, kind };
}

async function argsOf(kind: FirewallKind, host = 'h1') {
  const rendered = (await kind.render([host])).get(host)!;
  return rendered.args as {
    state: string;
    rules?: { id: string }[];
    sets?: unknown[];
    confirm_s?: number;
  };
}

describe('templateRule', () => {
  it('when src names a set, then src_set is s_<name> and src4/src6 are empty', () => {
    const r = templateRule(stored({ chain: 'input', src: ['@blocklist'], action: 'drop' }));
    expect(r).toMatchObject({ src_set: 's_blocklist', src4: [], src6: [], dst_set: null });
  });

  it('when src names a zone, then src_set is z_<zone> and src4/src6 are empty', () => {
    const r = templateRule(stored({ chain: 'forward', src: ['@zone:lan'], action: 'accept' }));
    expect(r).toMatchObject({ src_set: 'z_lan', src4: [], src6: [] });
  });

  it('when dst lists addresses of both families, then they are split into dst4 and dst6 and no set is named', () => {
    const r = templateRule(
      stored({ chain: 'forward', dst: ['2001:db8::/32', '192.0.2.0/24'], action: 'accept' }),
    );
    expect(r).toMatchObject({ dst4: ['192.0.2.0/24'], dst6: ['2001:db8::/32'], dst_set: null });
  });

  it('when dport names a port set, then dport_set is s_<name> and dport is empty', () => {
    const r = templateRule(
      stored({ chain: 'input', protocol: 'tcp', dport: ['@web'], action: 'accept' }),
    );
    expect(r).toMatchObject({ dport_set: 's_web', dport: [], sport_set: null, sport: [] });
  });

  it('when a rule has a NAT target, then to_addr and to_port carry it', () => {
    const r = templateRule(
      stored({
        chain: 'prerouting',
        protocol: 'tcp',
        dport: ['8080'],
        action: 'dnat',
        to: { address: '192.0.2.10', port: 80 },
      }),
    );
    expect(r).toMatchObject({ to_addr: '192.0.2.10', to_port: 80, dport: ['8080'] });
  });
});

describe('FirewallKind.render', () => {
  it('when a host was never managed, then its state is unmanaged and its rows are still settled', async () => {
    const { store, kind } = setup([]);
    const rule = stored({ host: 'h9', chain: 'input', action: 'accept' });
    store.rows.set('h9', [rule]);
    const rendered = (await kind.render(['h9'])).get('h9')!;
    expect(rendered.args).toEqual({ state: 'unmanaged' });
    expect(rendered.settles).toEqual([{ id: rule.id }]);
  });

  it('when a host was released, then its state is absent with no rules', async () => {
    const { store, kind } = setup([]);
    store.managedHosts.set('h1', false);
    expect(await argsOf(kind)).toEqual({ state: 'absent', rules: [] });
  });

  it('when a host is managed, then its state is present and confirm_s is passed', async () => {
    const { kind } = setup([stored({ chain: 'input', action: 'accept' })], [], 45);
    expect(await argsOf(kind)).toMatchObject({ state: 'present', confirm_s: 45 });
  });

  it('when rules are paused or pending, then only the active ones are rendered, but all are settled', async () => {
    const active = stored({ chain: 'input', action: 'accept' });
    const paused = stored({ chain: 'input', action: 'drop' }, { status: 'paused' });
    const pending = stored({ chain: 'input', action: 'reject' }, { status: 'pending' });
    const { kind } = setup([active, paused, pending]);
    const rendered = (await kind.render(['h1'])).get('h1')!;
    expect((rendered.args.rules as { id: string }[]).map((r) => r.id)).toEqual([active.id]);
    expect(rendered.settles).toEqual([{ id: active.id }, { id: paused.id }, { id: pending.id }]);
  });

  it('when the host sees several sets, then only those its active rules name are passed', async () => {
    const { kind } = setup(
      [
        stored({ chain: 'input', src: ['@blocklist'], action: 'drop' }),
        stored({ chain: 'input', protocol: 'tcp', dport: ['@web'], action: 'accept' }),
        stored({ chain: 'input', src: ['@paused'], action: 'drop' }, { status: 'paused' }),
      ],
      [
        set('big', 'address', ['10.0.0.0/8']),
        set('blocklist', 'address', ['192.0.2.0/24', '2001:db8::/32', '198.51.100.0/24']),
        set('paused', 'address', ['203.0.113.0/24']),
        set('web', 'port', ['443', '80']),
      ],
    );
    expect((await argsOf(kind)).sets).toEqual([
      {
        name: 's_blocklist',
        type: 'address',
        v4: ['192.0.2.0/24', '198.51.100.0/24'],
        v6: ['2001:db8::/32'],
      },
      { name: 's_web', type: 'port', ports: ['443', '80'] },
    ]);
  });

  it('when a rule names a zone, then a set of the zone’s name is not passed for it', async () => {
    const { kind } = setup(
      [stored({ chain: 'forward', src: ['@zone:lan'], action: 'accept' })],
      [set('lan', 'address', ['192.0.2.0/24'])],
    );
    expect((await argsOf(kind)).sets).toEqual([]);
  });

  it('when a rule opens for a route that is active, then it is rendered', async () => {
    const opening = stored({ chain: 'forward', action: 'accept' }, { routeId: ROUTE_A });
    const { store, kind } = setup([opening]);
    store.active.add(ROUTE_A);
    expect((await argsOf(kind)).rules!.map((r) => r.id)).toEqual([opening.id]);
  });

  it('when a rule opens for a route that is not active, then it is not rendered, whatever its own status, but it is settled', async () => {
    const opening = stored({ chain: 'forward', action: 'accept' }, { routeId: ROUTE_B });
    const { kind } = setup([opening]);
    const rendered = (await kind.render(['h1'])).get('h1')!;
    expect(rendered.args.rules).toEqual([]);
    expect(rendered.settles).toEqual([{ id: opening.id }]);
  });

  it('when several rules open for the same routes, then the active routes are asked once, each route once', async () => {
    const { store, kind } = setup([
      stored({ chain: 'forward', action: 'accept' }, { routeId: ROUTE_A }),
      stored({ chain: 'forward', protocol: 'tcp', action: 'accept' }, { routeId: ROUTE_A }),
      stored({ chain: 'forward', protocol: 'udp', action: 'accept' }, { routeId: ROUTE_B }),
      stored({ chain: 'input', action: 'accept' }),
    ]);
    await kind.render(['h1']);
    expect(store.askedRoutes).toEqual([[ROUTE_A, ROUTE_B]]);
  });

  it('when a managed host has rules, then each is rendered as templateRule renders it', async () => {
    const rule = stored({ chain: 'input', src: ['@blocklist'], action: 'drop' });
    const { kind } = setup([rule], [set('blocklist', 'address', ['192.0.2.0/24'])]);
    expect((await argsOf(kind)).rules).toEqual([templateRule(rule)]);
  });
});
