import { describe, expect, it } from 'vitest';
import type { FirewallService, RulePatch } from '../../../src/firewall/firewall-service.ts';
import type { FirewallStore } from '../../../src/firewall/firewall-store.ts';
import { RouteOpenings } from '../../../src/firewall/route-openings.ts';
import { parseRuleSpec, type RuleInput } from '../../../src/firewall/rule-input.ts';
import type { FirewallRule } from '../../../src/firewall/types.ts';
import { ConflictError, NotFoundError, ValidationError } from '../../../src/http/errors.ts';
import type { RouteInput } from '../../../src/routes/route-input.ts';
import type { PlannedRoute } from '../../../src/routes/route-plan.ts';
import type { Route, RouteOpening, RouteSpec } from '../../../src/routes/types.ts';

const T = new Date('2030-01-01T00:00:00Z');
const LATER = new Date('2030-02-01T00:00:00Z');
const ada = { name: 'ada', role: 'operator' } as const;

type RuleItem = { input: RuleInput; base: string; routeId?: string };

/** FirewallService as RouteOpenings uses it: plan parses as the real one does, the rest records. */
class FakeRules {
  readonly planned: RuleItem[][] = [];
  readonly calls: unknown[][] = [];
  /** What an action on a rule id throws, as a rule already in that state would. */
  readonly failing = new Map<string, Error>();

  async plan(inputs: RuleItem[]) {
    this.planned.push(inputs);
    return inputs.map(({ input, base, routeId }) => ({
      spec: parseRuleSpec(input, base),
      schedule: { createAt: null, deleteAt: null },
      identity: '',
      comment: input.comment ?? null,
      routeId: routeId ?? null,
    }));
  }
  async create(inputs: RuleItem[], actor: unknown) {
    this.calls.push(['create', inputs, actor]);
    return [];
  }
  private act(action: string, id: string, ...rest: unknown[]) {
    this.calls.push([action, id, ...rest]);
    const err = this.failing.get(id);
    if (err) throw err;
  }
  async patch(id: string, patch: RulePatch, actor: unknown) {
    this.act('patch', id, patch, actor);
  }
  async pause(id: string, actor: unknown) {
    this.act('pause', id, actor);
  }
  async resume(id: string, actor: unknown) {
    this.act('resume', id, actor);
  }
  async delete(id: string, actor: unknown) {
    this.act('delete', id, actor);
  }
}

/** The store's live rules of each route. */
class FakeStore {
  readonly byRoute = new Map<string, string[]>();
  readonly asked: string[] = [];
  async liveOfRoute(routeId: string): Promise<FirewallRule[]> {
    this.asked.push(routeId);
    return (this.byRoute.get(routeId) ?? []).map((id) => ({ id }) as FirewallRule);
  }
}

function setup() {
  const rules = new FakeRules();
  const store = new FakeStore();
  const openings = new RouteOpenings(
    rules as unknown as FirewallService,
    store as unknown as FirewallStore,
  );
  return { rules, store, openings };
}

const spec = (host: string, to: string): RouteSpec => ({
  host,
  to,
  family: to.includes(':') ? 6 : 4,
  table: 254,
  metric: 0,
  via: null,
  dev: 'eth1',
  scope: null,
  src: null,
  onlink: false,
  force: false,
  failover: null,
});

const planned = (
  base: string,
  to: string,
  allow: RouteInput['allow'],
  schedule = { createAt: null as Date | null, deleteAt: null as Date | null },
): PlannedRoute => ({
  spec: spec('h1', to),
  schedule,
  input: { host: 'h1', to, dev: 'eth1', allow },
  base,
});

let seq = 0;
function route(to: string, allow: RouteOpening[] | null, extra: Partial<Route> = {}): Route {
  seq += 1;
  return {
    ...spec('h1', to),
    id: `a0000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    createAt: null,
    deleteAt: null,
    comment: null,
    allow,
    failoverState: null,
    status: 'active',
    sync: {
      state: 'applying',
      error: null,
      conflict: null,
      retryAt: null,
      syncedAt: null,
      lastRunId: null,
    },
    createdBy: 'ada',
    createdAt: T,
    updatedAt: T,
    removedAt: null,
    removedReason: null,
    removedBy: null,
    ...extra,
  };
}

describe('RouteOpenings.openingsOf', () => {
  it('when a route has no allow (absent or empty), then its openings are null', async () => {
    const { openings } = setup();
    expect(
      await openings.openingsOf([
        planned('/body/0', '203.0.113.0/24', undefined),
        planned('/body/1', '198.51.100.0/24', []),
      ]),
    ).toEqual([null, null]);
  });

  it('when a route allows openings, then each is canonical as plan() parsed it', async () => {
    const { openings } = setup();
    const [out] = await openings.openingsOf([
      planned('/body', '203.0.113.0/24', [
        { protocol: 'tcp', dport: ['443', '22', '22'], src: ['192.0.2.7', '10.0.0.0/8'] },
      ]),
    ]);
    expect(out).toEqual([
      { protocol: 'tcp', dport: ['22', '443'], src: ['10.0.0.0/8', '192.0.2.7/32'] },
    ]);
  });

  it('when an opening names neither protocol, ports nor sources, then it opens any protocol from anywhere', async () => {
    const { openings } = setup();
    const [out] = await openings.openingsOf([planned('/body', '203.0.113.0/24', [{}])]);
    expect(out).toEqual([{ protocol: 'any', dport: [], src: [] }]);
  });

  it('when several routes are planned, then plan() is asked once and each route gets its own openings back', async () => {
    const { rules, openings } = setup();
    const out = await openings.openingsOf([
      planned('/body/0', '203.0.113.0/24', [{ protocol: 'tcp' }, { protocol: 'udp' }]),
      planned('/body/1', '198.51.100.0/24', null),
      planned('/body/2', '2001:db8:f000::/48', [{ protocol: 'icmpv6' }]),
    ]);
    expect(rules.planned).toHaveLength(1);
    expect(out).toEqual([
      [
        { protocol: 'tcp', dport: [], src: [] },
        { protocol: 'udp', dport: [], src: [] },
      ],
      null,
      [{ protocol: 'icmpv6', dport: [], src: [] }],
    ]);
  });

  it('when openings are planned, then each is checked as a rule based at <base>/allow/<i>', async () => {
    const { rules, openings } = setup();
    await openings.openingsOf([
      planned('/body/0', '203.0.113.0/24', [{}, {}]),
      planned('/body/1', '198.51.100.0/24', [{}]),
    ]);
    expect(rules.planned[0]!.map((i) => i.base)).toEqual([
      '/body/0/allow/0',
      '/body/0/allow/1',
      '/body/1/allow/0',
    ]);
  });

  it('when an opening is planned, then its rule is a forward accept to the route’s prefix in the route’s family and schedule', async () => {
    const { rules, openings } = setup();
    await openings.openingsOf([
      planned('/body', '2001:db8:f000::/48', [{ protocol: 'tcp', dport: ['443'] }], {
        createAt: T,
        deleteAt: LATER,
      }),
    ]);
    expect(rules.planned[0]![0]!.input).toEqual({
      host: 'h1',
      chain: 'forward',
      family: 'ip6',
      protocol: 'tcp',
      src: [],
      dst: ['2001:db8:f000::/48'],
      dport: ['443'],
      action: 'accept',
      create_at: T.toISOString(),
      delete_at: LATER.toISOString(),
    });
  });

  it('when an opening is wrong, then the 400 names the field under the route’s allow', async () => {
    const { openings } = setup();
    const err = await openings
      .openingsOf([planned('/body/3', '203.0.113.0/24', [{}, { src: ['2001:db8::/32'] }])])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).fields.map((f) => f.field)).toEqual(['/body/3/allow/1/src/0']);
  });
});

describe('RouteOpenings.created', () => {
  it('when routes with openings are created, then forward accept rules to each prefix are created, linked to the route', async () => {
    const { rules, openings } = setup();
    const r = route('203.0.113.0/24', [{ protocol: 'tcp', dport: ['443'], src: ['10.0.0.0/8'] }], {
      createAt: T,
      deleteAt: LATER,
    });
    await openings.created([r], ada);
    expect(rules.calls).toEqual([
      [
        'create',
        [
          {
            input: {
              host: 'h1',
              chain: 'forward',
              family: 'ip',
              protocol: 'tcp',
              src: ['10.0.0.0/8'],
              dst: ['203.0.113.0/24'],
              dport: ['443'],
              action: 'accept',
              create_at: T.toISOString(),
              delete_at: LATER.toISOString(),
              comment: `opening of route ${r.id}`,
            },
            base: `/route/${r.id}/allow/0`,
            routeId: r.id,
          },
        ],
        ada,
      ],
    ]);
  });

  it('when an IPv6 route without schedule has openings, then its rules are ip6 with no schedule', async () => {
    const { rules, openings } = setup();
    const r = route('2001:db8:f000::/48', [{ protocol: 'any', dport: [], src: [] }]);
    await openings.created([r], ada);
    const [, items] = rules.calls[0] as [string, RuleItem[]];
    expect(items[0]!.input).toMatchObject({
      family: 'ip6',
      dst: ['2001:db8:f000::/48'],
      create_at: null,
      delete_at: null,
    });
  });

  it('when several routes are created, then all their openings go in one create, each with its route and index', async () => {
    const { rules, openings } = setup();
    const a = route('203.0.113.0/24', [
      { protocol: 'tcp', dport: ['22'], src: [] },
      { protocol: 'udp', dport: ['53'], src: [] },
    ]);
    const b = route('198.51.100.0/24', [{ protocol: 'icmp', dport: [], src: [] }]);
    await openings.created([a, b], ada);
    expect(rules.calls).toHaveLength(1);
    const [, items] = rules.calls[0] as [string, RuleItem[]];
    expect(items.map((i) => [i.base, i.routeId])).toEqual([
      [`/route/${a.id}/allow/0`, a.id],
      [`/route/${a.id}/allow/1`, a.id],
      [`/route/${b.id}/allow/0`, b.id],
    ]);
  });

  it('when no created route has openings, then no rule is created', async () => {
    const { rules, openings } = setup();
    await openings.created([route('203.0.113.0/24', null), route('198.51.100.0/24', [])], ada);
    expect(rules.calls).toEqual([]);
  });
});

describe('RouteOpenings.followed', () => {
  it('when a route is paused, then each of its live openings is paused by the same actor', async () => {
    const { rules, store, openings } = setup();
    const r = route('203.0.113.0/24', [{ protocol: 'any', dport: [], src: [] }]);
    store.byRoute.set(r.id, ['rule-1', 'rule-2']);
    await openings.followed(r, 'pause', ada);
    expect(store.asked).toEqual([r.id]);
    expect(rules.calls).toEqual([
      ['pause', 'rule-1', ada],
      ['pause', 'rule-2', ada],
    ]);
  });

  it.each(['resume', 'delete'] as const)(
    'when a route is followed by %s, then each live opening gets the same action',
    async (action) => {
      const { rules, store, openings } = setup();
      const r = route('203.0.113.0/24', null);
      store.byRoute.set(r.id, ['rule-1']);
      await openings.followed(r, action, ada);
      expect(rules.calls).toEqual([[action, 'rule-1', ada]]);
    },
  );

  it('when an opening is already in that state (a ConflictError), then it is skipped and the others still follow', async () => {
    const { rules, store, openings } = setup();
    const r = route('203.0.113.0/24', null);
    store.byRoute.set(r.id, ['rule-1', 'rule-2']);
    rules.failing.set('rule-1', new ConflictError('Rule rule-1 is paused'));
    await expect(openings.followed(r, 'pause', ada)).resolves.toBeUndefined();
    expect(rules.calls.map((c) => c.slice(0, 2))).toEqual([
      ['pause', 'rule-1'],
      ['pause', 'rule-2'],
    ]);
  });

  it('when following fails otherwise, then the error is thrown', async () => {
    const { rules, store, openings } = setup();
    const r = route('203.0.113.0/24', null);
    store.byRoute.set(r.id, ['rule-1']);
    rules.failing.set('rule-1', new NotFoundError('Rule rule-1 not found'));
    await expect(openings.followed(r, 'delete', ada)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('when a route is rescheduled, then each live opening is patched with its create_at and delete_at', async () => {
    const { rules, store, openings } = setup();
    const r = route('203.0.113.0/24', null, { createAt: T, deleteAt: LATER });
    store.byRoute.set(r.id, ['rule-1']);
    await openings.followed(r, 'reschedule', ada);
    expect(rules.calls).toEqual([
      ['patch', 'rule-1', { create_at: T.toISOString(), delete_at: LATER.toISOString() }, ada],
    ]);
  });

  it('when a route’s schedule is cleared, then its openings are patched with nulls', async () => {
    const { rules, store, openings } = setup();
    const r = route('203.0.113.0/24', null);
    store.byRoute.set(r.id, ['rule-1']);
    await openings.followed(r, 'reschedule', ada);
    expect(rules.calls).toEqual([['patch', 'rule-1', { create_at: null, delete_at: null }, ada]]);
  });

  it('when a route has no live openings, then nothing is done', async () => {
    const { rules, openings } = setup();
    await openings.followed(route('203.0.113.0/24', null), 'pause', ada);
    expect(rules.calls).toEqual([]);
  });
});
