import { describe, expect, it } from 'vitest';
import {
  addressOwners,
  checkSources,
  failoverAccepts,
  forwardAcceptCovers,
  forwardDropWarnings,
  forwardPolicyOf,
  normalAddress,
  ownersOf,
  type CandidateRoute,
  type CheckAccept,
  type FleetHost,
  type FleetView,
  type GatewayFirewall,
} from '../../../src/firewall/failover-checks.ts';
import { FirewallKind } from '../../../src/firewall/firewall-kind.ts';
import type { FirewallStore } from '../../../src/firewall/firewall-store.ts';
import { parseRuleSpec, type RuleInput } from '../../../src/firewall/rule-input.ts';
import type { FirewallRule } from '../../../src/firewall/types.ts';
import type { HealthCheck } from '../../../src/routes/types.ts';

const T = new Date('2030-01-01T00:00:00Z');

const host = (over: Partial<FleetHost> = {}): FleetHost => ({
  ansibleHost: null,
  addresses: [],
  watched: true,
  local: false,
  ...over,
});

const icmp: HealthCheck = {
  type: 'icmp',
  port: null,
  intervalS: 2,
  timeoutS: 1,
  rise: 2,
  fall: 2,
};
const tcp = (port: number): HealthCheck => ({ ...icmp, type: 'tcp', port });

let seq = 0;
function route(
  h: string,
  candidates: string[],
  checks: HealthCheck[] = [icmp],
  over: Partial<CandidateRoute> = {},
): CandidateRoute {
  seq += 1;
  const v6 = candidates[0]!.includes(':');
  return {
    id: `c0000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    host: h,
    to: v6 ? '2001:db8:f000::/48' : '203.0.113.0/24',
    family: v6 ? 6 : 4,
    status: 'active',
    failover: { candidates, healthCheck: checks, mode: 'failover', preempt: false, holdDownS: 10 },
    ...over,
  };
}

function rule(
  input: Omit<RuleInput, 'host'> & { host?: string },
  over: Partial<FirewallRule> = {},
) {
  seq += 1;
  return {
    ...parseRuleSpec({ host: 'g1', ...input }, '/body'),
    id: `r0000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    comment: null,
    routeId: null,
    createAt: null,
    deleteAt: null,
    status: 'active',
    sync: { state: 'in_sync', error: null, retryAt: null, syncedAt: null, lastRunId: null },
    createdBy: 'ada',
    createdAt: T,
    updatedAt: T,
    removedAt: null,
    removedReason: null,
    removedBy: null,
    ...over,
  } satisfies FirewallRule as FirewallRule;
}

/**
 * r1, r2: route hosts on 10.0.0.0/24 (r1 with a snapshot, r2 known by its inventory address
 * only); g1, g2: gateways on the same LAN (g1 also known by a second, snapshot-only address
 * and an IPv6 one); far: a route host routeplane cannot watch (the controller checks).
 */
const fleet = (): FleetView =>
  new Map([
    [
      'r1',
      host({
        ansibleHost: '192.168.1.11',
        addresses: [
          { address: '192.168.1.11', prefixlen: 24 },
          { address: '10.0.0.11', prefixlen: 24 },
          { address: '2001:db8:1::11', prefixlen: 64 },
        ],
      }),
    ],
    ['r2', host({ ansibleHost: '10.0.0.12' })],
    ['far', host({ ansibleHost: '10.9.9.9', watched: false })],
    ['ctl', host({ ansibleHost: '127.0.0.1', local: true })],
    [
      'g1',
      host({
        ansibleHost: '10.0.0.21',
        addresses: [
          { address: '10.0.0.21', prefixlen: 24 },
          { address: '10.0.0.121', prefixlen: 24 },
          { address: '2001:db8:1::21', prefixlen: 64 },
        ],
      }),
    ],
    ['g2', host({ ansibleHost: '10.0.0.22' })],
  ]);

const accept = (over: Partial<CheckAccept>): CheckAccept => ({
  family: 'ip',
  src: [],
  src_set: null,
  dst: '10.0.0.21',
  protocol: 'icmp',
  port: null,
  ...over,
});

describe('normalAddress and owners', () => {
  it('when an address is written in brackets, with a zone or IPv4-mapped, then it is one spelling', () => {
    expect(normalAddress('[2001:db8::1]')).toBe('2001:db8::1');
    expect(normalAddress('fe80::1%eth0')).toBe('fe80::1');
    expect(normalAddress('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(normalAddress('gw.example')).toBeNull();
    expect(normalAddress(42)).toBeNull();
  });

  it('when a gateway address is a host’s inventory or snapshot address, then that host owns it', () => {
    const index = addressOwners(fleet());
    expect(ownersOf(index, '10.0.0.21')).toEqual(['g1']);
    expect(ownersOf(index, '10.0.0.121')).toEqual(['g1']);
    expect(ownersOf(index, '2001:db8:1:0::21')).toEqual(['g1']);
    expect(ownersOf(index, '10.0.0.99')).toEqual([]);
    expect(ownersOf(addressOwners(fleet(), new Set(['g2'])), '10.0.0.21')).toEqual([]);
  });
});

describe('checkSources', () => {
  it('when the route host has a snapshot address on the gateway’s subnet, then the checks leave from it', () => {
    expect(checkSources(fleet(), 'r1', '10.0.0.21')).toEqual(['10.0.0.11']);
    expect(checkSources(fleet(), 'r1', '2001:db8:1::21')).toEqual(['2001:db8:1::11']);
  });

  it('when no snapshot address is on the gateway’s subnet, then its inventory address of that family', () => {
    expect(checkSources(fleet(), 'r2', '10.0.0.21')).toEqual(['10.0.0.12']);
    expect(checkSources(fleet(), 'r1', '172.16.0.1')).toEqual(['192.168.1.11']);
  });

  it('when no address of the family is known, then there is no source', () => {
    expect(checkSources(fleet(), 'r2', '2001:db8:1::21')).toBeNull();
    expect(checkSources(fleet(), 'nobody', '10.0.0.21')).toBeNull();
  });

  it('when routeplane cannot watch the route host, or it is the controller, then management checks', () => {
    expect(checkSources(fleet(), 'far', '10.0.0.21')).toBe('management');
    expect(checkSources(fleet(), 'ctl', '10.0.0.21')).toBe('management');
  });
});

describe('failoverAccepts', () => {
  it('when an active route checks its candidates by icmp and tcp/22, then each managed gateway accepts both from the route host, the others nothing', () => {
    const r = route('r1', ['10.0.0.21', '10.0.0.22'], [icmp, tcp(22)]);
    const out = failoverAccepts(fleet(), [r], ['g1', 'g2', 'r2']);
    expect(out.get('g1')).toEqual([
      accept({ src: ['10.0.0.11'] }),
      accept({ src: ['10.0.0.11'], protocol: 'tcp', port: 22 }),
    ]);
    expect(out.get('g2')).toEqual([
      accept({ dst: '10.0.0.22', src: ['10.0.0.11'] }),
      accept({ dst: '10.0.0.22', src: ['10.0.0.11'], protocol: 'tcp', port: 22 }),
    ]);
    expect(out.has('r2')).toBe(false);
  });

  it('when a gateway is not among the hosts rendered, then it gets nothing', () => {
    const r = route('r1', ['10.0.0.21', '10.0.0.22']);
    expect([...failoverAccepts(fleet(), [r], ['g2']).keys()]).toEqual(['g2']);
  });

  it('when two routes check the same gateway the same way from two hosts, then one line names both sources', () => {
    const out = failoverAccepts(
      fleet(),
      [route('r1', ['10.0.0.21', '10.0.0.22']), route('r2', ['10.0.0.22', '10.0.0.21'])],
      ['g1'],
    );
    expect(out.get('g1')).toEqual([accept({ src: ['10.0.0.11', '10.0.0.12'] })]);
  });

  it('when routes check different ports, then each port has its own line with its own sources', () => {
    const out = failoverAccepts(
      fleet(),
      [
        route('r1', ['10.0.0.21', '10.0.0.22'], [tcp(443)]),
        route('r2', ['10.0.0.21', '10.0.0.22'], [tcp(22)]),
      ],
      ['g1'],
    );
    expect(out.get('g1')).toEqual([
      accept({ src: ['10.0.0.12'], protocol: 'tcp', port: 22 }),
      accept({ src: ['10.0.0.11'], protocol: 'tcp', port: 443 }),
    ]);
  });

  it('when the candidate is the gateway’s snapshot-only or IPv6 address, then the accept names that address', () => {
    const out = failoverAccepts(
      fleet(),
      [route('r1', ['10.0.0.121', '10.0.0.22']), route('r1', ['2001:db8:1::21', '2001:db8:1::99'])],
      ['g1'],
    );
    expect(out.get('g1')).toEqual([
      accept({ dst: '10.0.0.121', src: ['10.0.0.11'] }),
      accept({ family: 'ip6', dst: '2001:db8:1::21', src: ['2001:db8:1::11'], protocol: 'icmpv6' }),
    ]);
  });

  it('when the controller checks (the route host is not watched), then the accept is from the management set', () => {
    const out = failoverAccepts(fleet(), [route('far', ['10.0.0.21', '10.0.0.22'])], ['g1']);
    expect(out.get('g1')).toEqual([accept({ src_set: 'mgmt4' })]);
  });

  it('when the route is paused, pending or removed, then nothing is accepted for it', () => {
    const routes = (['paused', 'pending', 'deleted', 'expired'] as const).map((status) =>
      route('r1', ['10.0.0.21', '10.0.0.22'], [icmp], { status }),
    );
    expect(failoverAccepts(fleet(), routes, ['g1', 'g2']).size).toBe(0);
  });

  it('when a route has no candidates, or its host is its own gateway, then nothing is accepted', () => {
    const plain = route('r1', ['10.0.0.21'], [icmp], { failover: null });
    const self = route('g1', ['10.0.0.21', '10.0.0.22']);
    const out = failoverAccepts(fleet(), [plain, self], ['g1', 'g2']);
    expect(out.has('g1')).toBe(false);
    expect(out.get('g2')).toEqual([accept({ dst: '10.0.0.22', src: ['10.0.0.121', '10.0.0.21'] })]);
  });

  it('when the order of routes changes, then the accepts are the same (the table text is stable)', () => {
    const a = route('r1', ['10.0.0.21', '10.0.0.22'], [tcp(22), icmp]);
    const b = route('r2', ['10.0.0.21', '10.0.0.22'], [tcp(80)]);
    expect(failoverAccepts(fleet(), [a, b], ['g1'])).toEqual(
      failoverAccepts(fleet(), [b, a], ['g1']),
    );
  });
});

describe('forward policy and coverage', () => {
  it('when routeplane_firewall_policy says nothing of forward, then it is drop as the template renders it', () => {
    expect(forwardPolicyOf({})).toBe('drop');
    expect(forwardPolicyOf({ routeplane_firewall_policy: { input: 'accept' } })).toBe('drop');
    expect(forwardPolicyOf({ routeplane_firewall_policy: { forward: 'accept' } })).toBe('accept');
    expect(forwardPolicyOf({ routeplane_firewall_policy: 'accept' })).toBe('drop');
  });

  it('when an active forward accept names a prefix holding the destination, or any, then it covers it', () => {
    const to = '203.0.113.0/24';
    const f = (input: Omit<RuleInput, 'host' | 'chain' | 'action'>, over = {}) =>
      forwardAcceptCovers(rule({ chain: 'forward', action: 'accept', ...input }, over), to, 4);
    expect(f({ dst: ['203.0.113.0/24'] })).toBe(true);
    expect(f({ dst: ['203.0.0.0/16'], protocol: 'tcp', dport: ['443'] })).toBe(true);
    expect(f({})).toBe(true);
    expect(f({ dst: ['203.0.113.0/25'] })).toBe(false);
    expect(f({ dst: ['198.51.100.0/24'] })).toBe(false);
    expect(f({ dst: ['2001:db8::/32'] })).toBe(false);
    expect(f({ family: 'ip6' })).toBe(false);
    expect(f({ dst: ['203.0.113.0/24'] }, { status: 'paused' })).toBe(false);
    expect(forwardAcceptCovers(rule({ chain: 'input', action: 'accept', dst: [to] }), to, 4)).toBe(
      false,
    );
    expect(forwardAcceptCovers(rule({ chain: 'forward', action: 'drop', dst: [to] }), to, 4)).toBe(
      false,
    );
  });
});

describe('forwardDropWarnings', () => {
  const gw = (over: Partial<GatewayFirewall> = {}): GatewayFirewall => ({
    forwardPolicy: 'drop',
    rules: [],
    ...over,
  });

  it('when a managed gateway drops forwarded traffic and nothing accepts the destination, then one warning names route, gateway and destination', () => {
    const r = route('r1', ['10.0.0.21', '10.0.0.121']);
    const out = forwardDropWarnings(fleet(), [r], new Map([['g1', gw()]]));
    expect(out).toHaveLength(1);
    expect(out[0]).toContain(`route ${r.id}`);
    expect(out[0]).toContain('is g1');
    expect(out[0]).toContain('203.0.113.0/24');
    expect(out[0]).toMatch(/forward policy of drop/);
  });

  it('when a forward accept covers the destination, the policy is accept, or the gateway is not managed, then no warning', () => {
    const r = route('r1', ['10.0.0.21', '10.0.0.22']);
    const open = rule({ chain: 'forward', action: 'accept', dst: ['203.0.113.0/24'] });
    expect(forwardDropWarnings(fleet(), [r], new Map([['g1', gw({ rules: [open] })]]))).toEqual([]);
    expect(
      forwardDropWarnings(fleet(), [r], new Map([['g1', gw({ forwardPolicy: 'accept' })]])),
    ).toEqual([]);
    expect(forwardDropWarnings(fleet(), [r], new Map())).toEqual([]);
  });

  it('when both candidates are managed gateways that drop, then each is named', () => {
    const r = route('r1', ['10.0.0.21', '10.0.0.22']);
    const out = forwardDropWarnings(
      fleet(),
      [r],
      new Map([
        ['g1', gw()],
        ['g2', gw()],
      ]),
    );
    expect(out.map((w) => /is (g\d)/.exec(w)?.[1])).toEqual(['g1', 'g2']);
  });

  it('when a route has no candidates, then no warning', () => {
    const r = route('r1', ['10.0.0.21'], [icmp], { failover: null });
    expect(forwardDropWarnings(fleet(), [r], new Map([['g1', gw()]]))).toEqual([]);
  });
});

describe('FirewallKind renders the check accepts', () => {
  class FakeStore {
    async managed(hosts: string[]) {
      return new Map(
        [
          ['g1', true],
          ['g2', false],
        ].filter(([h]) => hosts.includes(h as string)) as [string, boolean][],
      );
    }
    async settleable(hosts: string[]) {
      return new Map(hosts.map((h) => [h, [] as FirewallRule[]]));
    }
    async activeRoutes() {
      return new Set<string>();
    }
  }

  it('when a managed host has check accepts, then its args carry them; unmanaged and released hosts are not asked', async () => {
    const asked: string[][] = [];
    const checks = [accept({ src: ['10.0.0.11'] })];
    const kind = new FirewallKind(
      new FakeStore() as unknown as FirewallStore,
      0,
      async () => new Map(),
      async () => new Map(),
      async (hosts) => {
        asked.push(hosts);
        return new Map([['g1', checks]]);
      },
    );
    const out = await kind.render(['g1', 'g2', 'h9']);
    expect(out.get('g1')!.args).toMatchObject({ state: 'present', failover_checks: checks });
    expect(out.get('g2')!.args).toEqual({ state: 'absent', rules: [] });
    expect(out.get('h9')!.args).toEqual({ state: 'unmanaged' });
    expect(asked).toEqual([['g1']]);
  });

  it('when no host rendered is managed, then the checks are not read at all', async () => {
    let asked = 0;
    const kind = new FirewallKind(
      new FakeStore() as unknown as FirewallStore,
      0,
      async () => new Map(),
      async () => new Map(),
      async () => {
        asked += 1;
        return new Map();
      },
    );
    await kind.render(['g2', 'h9']);
    expect(asked).toBe(0);
  });

  it('when previewed, then the host is rendered present with its accepts', async () => {
    const checks = [accept({ dst: '10.0.0.22', src: ['10.0.0.11'] })];
    const kind = new FirewallKind(
      new FakeStore() as unknown as FirewallStore,
      0,
      async () => new Map(),
      async () => new Map(),
      async () => new Map([['g2', checks]]),
    );
    const { args, managed } = await kind.renderPresent('g2');
    expect(managed).toBe(false);
    expect(args).toMatchObject({ state: 'present', failover_checks: checks });
  });
});
