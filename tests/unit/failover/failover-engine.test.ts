import { describe, expect, it, vi } from 'vitest';
import {
  CONTROLLER_POINT,
  FailoverEngine,
  type Probers,
} from '../../../src/failover/failover-engine.ts';
import { initialFailoverState } from '../../../src/failover/failover-input.ts';
import type { ProbePoint } from '../../../src/failover/probe/host-probers.ts';
import type { InventoryHost } from '../../../src/hosts/inventory.ts';
import type { InventorySource } from '../../../src/hosts/inventory-source.ts';
import type { WatchLeases } from '../../../src/live/watch-leases.ts';
import { createLogger } from '../../../src/logger.ts';
import type { FailoverOutcome, RoutesStore } from '../../../src/routes/routes-store.ts';
import type { FailoverPolicy, Route } from '../../../src/routes/types.ts';

// The engine with in-memory fakes: which probes each point runs, and what their results do.
const G1 = '198.51.100.1';
const G2 = '198.51.100.2';
const T0 = new Date('2026-12-01T10:00:00Z');

const policy = (p: Partial<FailoverPolicy> = {}): FailoverPolicy => ({
  candidates: [G1, G2],
  healthCheck: [{ type: 'icmp', port: null, intervalS: 1, timeoutS: 0.5, rise: 2, fall: 2 }],
  mode: 'failover',
  preempt: false,
  holdDownS: 10,
  ...p,
});

let n = 0;
function route(host: string, p: FailoverPolicy = policy()): Route {
  n += 1;
  return {
    id: `a0000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    host,
    to: `203.0.113.${n}/32`,
    family: 4,
    table: 254,
    metric: 0,
    via: p.candidates[0]!,
    dev: null,
    scope: null,
    src: null,
    onlink: false,
    force: false,
    failover: p,
    failoverState: initialFailoverState(p, T0),
    createAt: null,
    deleteAt: null,
    comment: null,
    allow: null,
    status: 'active',
    sync: {
      state: 'in_sync',
      error: null,
      conflict: null,
      retryAt: null,
      syncedAt: null,
      lastRunId: null,
    },
    createdBy: 'test',
    createdAt: T0,
    updatedAt: T0,
    removedAt: null,
    removedReason: null,
    removedBy: null,
  };
}

class FakeStore {
  readonly rows = new Map<string, Route>();
  reads = 0;
  /** As the store's queries: active routes with candidate gateways. */
  private isCandidate = (r: Route | undefined) => !!r?.failover && r.status === 'active';
  async anyCandidate(ids: string[]) {
    return ids.some((id) => this.isCandidate(this.rows.get(id)));
  }
  readonly recorded: { route: Route; outcome: FailoverOutcome }[] = [];
  async candidateRoutes() {
    this.reads++;
    return [...this.rows.values()].filter(this.isCandidate).map((r) => ({ ...r }));
  }
  async recordFailover(ids: string[], decide: (r: Route) => FailoverOutcome | null) {
    const out: { route: Route; outcome: FailoverOutcome }[] = [];
    for (const id of ids) {
      const r = this.rows.get(id)!;
      const outcome = decide(r);
      if (!outcome) continue;
      const next = {
        ...r,
        via: outcome.state.activeVia[0]!,
        failoverState: outcome.state,
        updatedAt: new Date(r.updatedAt.getTime() + 1),
      };
      this.rows.set(id, next);
      out.push({ route: next, outcome });
    }
    this.recorded.push(...out);
    return out;
  }
}

class FakeProbers implements Probers {
  last: ProbePoint[] = [];
  async set(points: ProbePoint[]) {
    this.last = points;
  }
  async stop() {}
}

const host = (name: string, vars: Record<string, unknown> = {}): InventoryHost => ({
  name,
  groups: [],
  vars: { ansible_host: '198.51.100.50', ...vars },
  local: false,
  localReason: null,
});

function setup(
  hosts: InventoryHost[],
  held?: (points: string[]) => string[],
  awaiting: Set<string> = new Set(),
) {
  const store = new FakeStore();
  const probers = new FakeProbers();
  const inventory = {
    current: async () => ({ hosts: new Map(hosts.map((h) => [h.name, h])), groups: new Map() }),
  } as unknown as InventorySource;
  const leases = {
    claim: async (points: string[]) => new Set(held ? held(points) : points),
    release: async () => undefined,
  } as unknown as WatchLeases;
  let now = T0;
  const engine = new FailoverEngine({
    store: store as unknown as RoutesStore,
    inventory,
    leases,
    probers,
    logger: createLogger('silent'),
    now: () => now,
    awaitingAccepts: async () => awaiting,
  });
  const tick = (s: number) => (now = new Date(T0.getTime() + s * 1000));
  return { store, probers, engine, tick };
}

/** Lets the engine's queued evaluation (a promise chain) finish. */
const settle = () => new Promise((r) => setTimeout(r, 10));

describe('FailoverEngine', () => {
  it('runs one probe per gateway and check on each point, however many routes share them', async () => {
    const { store, probers, engine } = setup([host('h1'), host('h2')]);
    for (const r of [route('h1'), route('h1'), route('h2')]) store.rows.set(r.id, r);
    await engine.refresh();
    const byPoint = new Map(probers.last.map((p) => [p.point, p.checks.map((c) => c.target)]));
    expect(byPoint.get('h1')?.sort()).toEqual([G1, G2]);
    expect(byPoint.get('h2')?.sort()).toEqual([G1, G2]);
  });

  it('checks the routes of a host it cannot watch from the controller', async () => {
    const { store, probers, engine } = setup([host('w1', { ansible_connection: 'winrm' })]);
    const r = route('w1');
    store.rows.set(r.id, r);
    await engine.refresh();
    expect(probers.last.map((p) => [p.point, p.host])).toEqual([[CONTROLLER_POINT, null]]);
  });

  it('probes nothing for a point whose lease another replica holds', async () => {
    const { store, probers, engine } = setup([host('h1'), host('h2')], (ps) =>
      ps.filter((p) => p !== 'h2'),
    );
    for (const r of [route('h1'), route('h2')]) store.rows.set(r.id, r);
    await engine.refresh();
    expect(probers.last.map((p) => p.point)).toEqual(['h1']);
  });

  it('switches a route after fall failures of its active gateway, once, with its events', async () => {
    const { store, probers, engine, tick } = setup([host('h1')]);
    const r = route('h1');
    store.rows.set(r.id, r);
    await engine.refresh();
    const [g1, g2] = [G1, G2].map((g) => probers.last[0]!.checks.find((c) => c.target === g)!.id);
    const report = (id: string, outcome: 'ok' | 'fail', s: number) => {
      tick(s);
      engine.observe({
        point: 'h1',
        id,
        at: new Date(),
        outcome,
        detail: outcome === 'fail' ? 'timeout' : null,
      });
    };
    report(g2!, 'ok', 1);
    report(g2!, 'ok', 2);
    report(g1!, 'fail', 2);
    await settle();
    expect(store.rows.get(r.id)!.failoverState!.activeVia).toEqual([G1]);
    report(g1!, 'fail', 3);
    await settle();
    const after = store.rows.get(r.id)!;
    expect(after.failoverState!.activeVia).toEqual([G2]);
    expect(after.via).toBe(G2);
    const switches = store.recorded.filter((x) => x.outcome.switched);
    expect(switches).toHaveLength(1);
    expect(switches[0]!.outcome.events).toContainEqual({
      action: 'failover',
      detail: { from: [G1], to: [G2], reason: 'gateway_failed' },
    });
    expect(switches[0]!.outcome.events).toContainEqual({
      action: 'gateway_health',
      detail: expect.objectContaining({ gateway: G1, to: 'unhealthy', error: 'icmp: timeout' }),
    });
    report(g1!, 'fail', 4);
    await settle();
    expect(store.recorded.filter((x) => x.outcome.switched)).toHaveLength(1);
  });

  it('moves only the routes of the point whose prober saw the failure', async () => {
    const { store, probers, engine } = setup([host('h1'), host('h2')]);
    const [a, b] = [route('h1'), route('h2')];
    for (const r of [a, b]) store.rows.set(r.id, r);
    await engine.refresh();
    const ids = (point: string) => probers.last.find((p) => p.point === point)!.checks;
    for (const c of ids('h1')) {
      const outcome = c.target === G1 ? 'fail' : 'ok';
      for (const s of [1, 2]) {
        engine.observe({
          point: 'h1',
          id: c.id,
          at: new Date(T0.getTime() + s * 1000),
          outcome,
          detail: null,
        });
      }
    }
    await settle();
    expect(store.rows.get(a.id)!.failoverState!.activeVia).toEqual([G2]);
    expect(store.rows.get(b.id)!.failoverState!.activeVia).toEqual([G1]);
  });

  it('holds back failures towards a gateway whose firewall does not accept the checks yet', async () => {
    const awaiting = new Set([G1]);
    const { store, probers, engine } = setup([host('h1')], undefined, awaiting);
    const r = route('h1');
    store.rows.set(r.id, r);
    await engine.refresh();
    const g1 = probers.last[0]!.checks.find((c) => c.target === G1)!.id;
    const g2 = probers.last[0]!.checks.find((c) => c.target === G2)!.id;
    const at = (s: number) => new Date(T0.getTime() + s * 1000);
    for (const s of [0.5, 1.5]) {
      engine.observe({ point: 'h1', id: g2, at: at(s), outcome: 'ok', detail: null });
      engine.observe({ point: 'h1', id: g1, at: at(s), outcome: 'fail', detail: 'timeout' });
    }
    await settle();
    expect(store.rows.get(r.id)!.failoverState!.activeVia).toEqual([G1]);
    expect(store.rows.get(r.id)!.failoverState!.health[G1]!.health).toBe('unknown');
  });

  it('keeps the health a route recorded until its checks decide again (a restart records nothing)', async () => {
    const { store, engine } = setup([host('h1')]);
    const r = route('h1');
    r.failoverState = {
      activeVia: [G2],
      health: {
        [G1]: { health: 'unhealthy', since: T0 },
        [G2]: { health: 'healthy', since: T0 },
      },
      lastSwitch: { at: T0, from: [G1], to: [G2], reason: 'gateway_failed' },
    };
    store.rows.set(r.id, r);
    await engine.refresh();
    await settle();
    expect(store.recorded).toEqual([]);
  });

  it('tries a decision again when its transaction failed', async () => {
    const { store, probers, engine } = setup([host('h1')]);
    const r = route('h1');
    store.rows.set(r.id, r);
    await engine.refresh();
    const real = store.recordFailover.bind(store);
    let failures = 1;
    store.recordFailover = async (ids, decide) => {
      if (failures-- > 0) throw new Error('deadlock detected');
      return real(ids, decide);
    };
    for (const c of probers.last[0]!.checks) {
      const outcome = c.target === G1 ? 'fail' : 'ok';
      for (const s of [1, 2]) {
        engine.observe({
          point: 'h1',
          id: c.id,
          at: new Date(T0.getTime() + s * 1000),
          outcome,
          detail: null,
        });
      }
    }
    await new Promise((done) => setTimeout(done, 1_200));
    expect(store.rows.get(r.id)!.failoverState!.activeVia).toEqual([G2]);
  });

  it('reads the candidate routes again for a change of one of them, not for plain routes', async () => {
    const { store, engine } = setup([host('h1')]);
    const r = route('h1');
    const plain: Route = { ...route('h1'), failover: null, failoverState: null };
    store.rows.set(r.id, r);
    store.rows.set(plain.id, plain);
    await engine.refresh();
    const reads = store.reads;
    engine.routesChanged([plain.id]);
    await new Promise((done) => setTimeout(done, 300));
    expect(store.reads).toBe(reads);
    engine.routesChanged([r.id]);
    await vi.waitFor(() => expect(store.reads).toBe(reads + 1));
    await engine.stop();
  });
});
