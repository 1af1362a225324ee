import { beforeAll, describe, expect, it } from 'vitest';
import { nsExec, type Lab } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import {
  createRoute,
  findRoute,
  kernelHas,
  kernelWhen,
  ownedRoutes,
  poll,
  ROUTE_PROTO,
  type KernelRoute,
  type RouteKey,
} from '../../helpers/routes.ts';
import { useTestServer, type TestServer } from '../../helpers/server.ts';

// Periodic convergence against real kernels: every managed host is re-applied about once per
// CONVERGE_INTERVAL_S, and what such a run finds missing or altered is drift, repaired and
// recorded (REPAIR_DRIFT on) or only reported (REPAIR_DRIFT off).
//
// One lab of 3 hosts for the file. The repairing server manages h1 only (one stream of
// convergence runs keeps the file cheap on two cores); the reporting server, started after the
// first has stopped, manages h3 only. h2 is the gateway of their routes.
const T = 300_000;
const INTERVAL_S = 3;
const INTERVAL_MS = INTERVAL_S * 1000;
/** One apply run on two busy cores (the full suite), ansible-playbook's start-up included. */
const RUN_MS = 45_000;
/**
 * "Within about one interval": three intervals (the jitter is up to 1.2x) and two runs (one
 * may have read the host just before the hand-made change). A bound, never a timing claim.
 */
const REPAIR_BOUND_MS = 3 * INTERVAL_MS + 2 * RUN_MS;
/** Writes answer once their run has ended, even when it queued behind a convergence run. */
const SERVER_ENV = { CONVERGE_INTERVAL_S: String(INTERVAL_S), ROUTE_WAIT_S: '120' };

interface EventBody {
  id: number;
  at: string;
  actor: string;
  action: string;
  from: string | null;
  to: string;
  detail: Record<string, unknown>;
}

interface ModuleRef {
  id: string | null;
  to: string;
  table: number;
  metric: number;
}

interface TaskResultBody {
  host: string;
  module: string | null;
  status: string;
  changed: boolean;
  data: {
    changed?: boolean;
    repaired?: boolean;
    added?: string[];
    replaced?: string[];
    removed?: ModuleRef[];
    unchanged_count?: number;
    conflicts?: unknown[];
    errors?: unknown[];
  };
}

interface RunBody {
  id: string;
  kind: string;
  playbook: string;
  hosts: string[];
  status: string;
  requested_by: string;
  created_at: string;
  finished_at: string | null;
  summary: Record<string, { status: string; changed: number; failures: number }>;
  results: TaskResultBody[];
}

interface RouteBody {
  id: string;
  status: string;
  sync: { state: string; error: string | null; run_id: string | null } & Record<string, unknown>;
}

/** The API and database probes of one server (a useTestServer() proxy). */
function probes(server: TestServer) {
  async function events(id: string): Promise<EventBody[]> {
    const res = await server.request('GET', `/v1/routes/${id}/events`, { token: 'viewer' });
    expect(res.status, res.text).toBe(200);
    return res.body.items as EventBody[];
  }

  async function getRoute(id: string): Promise<RouteBody> {
    const res = await server.request('GET', `/v1/routes/${id}`, { token: 'viewer' });
    expect(res.status, res.text).toBe(200);
    return res.body as RouteBody;
  }

  async function getRun(id: string): Promise<RunBody> {
    const res = await server.request('GET', `/v1/runs/${id}`, { token: 'viewer' });
    expect(res.status, res.text).toBe(200);
    return res.body as RunBody;
  }

  /** Polls until the route has an event `action` newer than event id `after`; returns it. */
  function eventAfter(id: string, action: string, after: number): Promise<EventBody> {
    return poll(
      `route ${id}: event ${action}`,
      async () => (await events(id)).find((e) => e.id > after && e.action === action),
      REPAIR_BOUND_MS,
      500,
    );
  }

  /** The id of the route's newest event (0 when none). */
  const lastEventId = async (id: string) => Math.max(0, ...(await events(id)).map((e) => e.id));

  /**
   * The first run of `host` created after `since` whose outcome the reconciler has recorded:
   * the host's work row names it (finish() comes after every kind settled). Polls.
   */
  function settledRunAfter(host: string, since: Date): Promise<RunBody> {
    return poll(
      `a run of ${host} created after ${since.toISOString()}, settled`,
      async () => {
        const [w] = await server.database.db.knex('host_work').where({ host });
        if (!w?.last_run_id) return undefined;
        const run = await getRun(w.last_run_id as string);
        return new Date(run.created_at) > since ? run : undefined;
      },
      REPAIR_BOUND_MS,
      500,
    );
  }

  return { events, getRoute, getRun, eventAfter, lastEventId, settledRunAfter };
}

/** The routes module's result for `host` in a run. */
function routesResult(run: RunBody, host: string): TaskResultBody {
  const result = run.results.find((r) => r.host === host && r.module === 'routeplane_routes');
  expect(result, `run ${run.id} has a routeplane_routes result for ${host}`).toBeDefined();
  return result!;
}

// The module names the routes it added or replaced by id alone.
const ids = (refs: (string | ModuleRef)[] | undefined) =>
  (refs ?? []).map((r) => (typeof r === 'string' ? r : r.id));
const owned = (routes: KernelRoute[]) => routes.filter((r) => r.protocol === ROUTE_PROTO);

/** A shell script in the host's namespace, as one command (any failing line fails it). */
const sh = (lab: Lab, host: string, script: string) => nsExec(lab, host, ['sh', '-ec', script]);

const fleet = useLab(3);
const ipv4 = (n: number) => fleet.lab.hosts[n - 1]!.ipv4;

describe(
  `periodic convergence with REPAIR_DRIFT on (CONVERGE_INTERVAL_S=${INTERVAL_S}), managing h1`,
  { timeout: T },
  () => {
    const server = useTestServer(() => ({ INVENTORY: fleet.lab.inventoryPath, ...SERVER_ENV }));
    const api = probes(server);

    // h1's routes, made in one write (one run); each test changes the kernel behind them.
    const specs = {
      deleted: { to: '203.0.113.10/32', via: '' },
      altered: { to: '203.0.113.96/28', via: '', metric: 10 },
      table100: { to: '203.0.113.32/28', dev: 'eth0', table: 100 },
      v6: { to: '2001:db8:c0::/48', dev: 'eth0' },
      v6metric: { to: '2001:db8:c1::/48', dev: 'eth0', metric: 50 },
    };
    type Name = keyof typeof specs;
    const names = Object.keys(specs) as Name[];
    const keyOf = (name: Name): RouteKey => {
      const s = specs[name] as { to: string; table?: number; metric?: number };
      return {
        to: s.to,
        table: s.table ?? 254,
        // The kernel's metric for an IPv6 route given none is 1024.
        metric: s.metric ?? (s.to.includes(':') ? 1024 : 0),
      };
    };
    const route = {} as Record<Name, string>;

    beforeAll(async () => {
      specs.deleted.via = ipv4(2);
      specs.altered.via = ipv4(2);
      const res = await server.request('POST', '/v1/routes', {
        body: names.map((n) => ({ host: 'h1', ...specs[n] })),
      });
      expect(res.status, res.text).toBe(201);
      expect(res.body.counts).toEqual({ in_sync: names.length });
      (res.body.items as { route: { id: string } }[]).forEach((item, i) => {
        route[names[i]!] = item.route.id;
      });
    }, T);

    it('when a managed route is deleted by hand on the host, then it is back within about one interval, with a drift_repaired event (found missing) naming the run', async () => {
      const id = route.deleted;
      const key = keyOf('deleted');
      const before = await api.lastEventId(id);
      const writeRun = (await api.getRoute(id)).sync.run_id;

      await nsExec(fleet.lab, 'h1', ['ip', 'route', 'del', key.to, 'proto', ROUTE_PROTO]);
      const deletedAt = new Date();

      const back = await kernelHas(fleet.lab, 'h1', key, REPAIR_BOUND_MS);
      expect(back).toMatchObject({ gateway: ipv4(2), dev: 'eth0', protocol: ROUTE_PROTO });

      const drift = await api.eventAfter(id, 'drift_repaired', before);
      expect(drift).toMatchObject({
        actor: 'reconciler',
        from: 'active',
        to: 'active',
        detail: { host: 'h1', found: 'missing', run_id: expect.stringMatching(/^[0-9a-f-]{36}$/) },
      });
      const runId = drift.detail.run_id as string;
      expect(runId).not.toBe(writeRun);
      const run = await api.getRun(runId);
      expect(run).toMatchObject({
        kind: 'apply',
        playbook: 'apply',
        hosts: ['h1'],
        status: 'succeeded',
        requested_by: 'reconciler',
      });
      // The run that repaired it ended after the deletion (it may have been on its way
      // already), and its module result says it added this route and nothing else.
      expect(new Date(run.finished_at!).getTime()).toBeGreaterThan(deletedAt.getTime());
      const result = routesResult(run, 'h1');
      expect(result).toMatchObject({ status: 'changed', changed: true });
      expect(result.data).toMatchObject({ repaired: true, replaced: [], removed: [] });
      expect(ids(result.data.added)).toEqual([id]);

      // Repaired drift is an event, not a sync state: the route stayed in sync.
      expect((await api.getRoute(id)).sync).toMatchObject({ state: 'in_sync', error: null });
      const since = (await api.events(id)).filter((e) => e.id > before);
      expect(since.map((e) => e.action)).toEqual(['drift_repaired']);
    });

    it('when every routeplane route of a host is flushed by hand (v4 and v6, main table and table 100), then all come back within about one interval, each with a drift_repaired event (found missing)', async () => {
      const before = new Map(
        await Promise.all(names.map(async (n) => [n, await api.lastEventId(route[n])] as const)),
      );
      const allThere = (routes: KernelRoute[]) =>
        names.every((n) => findRoute(owned(routes), keyOf(n)) !== undefined);
      expect(allThere(await ownedRoutes(fleet.lab, 'h1'))).toBe(true);

      // Flushed and looked at in one command, before a convergence run can put any back.
      const left = await sh(
        fleet.lab,
        'h1',
        `ip -4 route flush table all proto ${ROUTE_PROTO}
         ip -6 route flush table all proto ${ROUTE_PROTO}
         ip -4 route show table all proto ${ROUTE_PROTO}
         ip -6 route show table all proto ${ROUTE_PROTO}`,
      );
      expect(left.trim()).toBe('');

      const back = await kernelWhen(
        fleet.lab,
        'h1',
        'every flushed route back',
        allThere,
        REPAIR_BOUND_MS,
      );
      expect(findRoute(back, keyOf('deleted'))).toMatchObject({ gateway: ipv4(2) });
      expect(findRoute(back, keyOf('table100'))).toMatchObject({ gateway: null, dev: 'eth0' });
      expect(findRoute(back, keyOf('v6metric'))).toMatchObject({ gateway: null, dev: 'eth0' });

      for (const n of names) {
        const drift = await api.eventAfter(route[n], 'drift_repaired', before.get(n)!);
        expect(drift.detail, n).toMatchObject({ host: 'h1', found: 'missing' });
        const run = await api.getRun(drift.detail.run_id as string);
        expect(run, n).toMatchObject({ kind: 'apply', status: 'succeeded' });
        expect(ids(routesResult(run, 'h1').data.added), n).toContain(route[n]);
        expect((await api.getRoute(route[n])).sync.state, n).toBe('in_sync');
      }
    });

    it('when a hand-made route of another protocol is on a managed host, then convergence never touches it: after two convergence runs it is there, unchanged', async () => {
      const show = async () =>
        JSON.parse(
          await nsExec(fleet.lab, 'h1', [
            'ip',
            '-j',
            '-d',
            'route',
            'show',
            '203.0.113.200/32',
            'table',
            'all',
          ]),
        ) as Record<string, unknown>[];
      await nsExec(fleet.lab, 'h1', [
        'ip',
        'route',
        'add',
        '203.0.113.200/32',
        'dev',
        'eth0',
        'proto',
        'static',
      ]);
      const before = await show();
      expect(before).toEqual([
        expect.objectContaining({ dst: '203.0.113.200', dev: 'eth0', protocol: 'static' }),
      ]);
      const since = new Date();

      const first = await api.settledRunAfter('h1', since);
      const second = await api.settledRunAfter('h1', new Date(first.finished_at!));
      for (const run of [first, second]) {
        expect(run).toMatchObject({ kind: 'apply', status: 'succeeded' });
        // Not even proposed for removal: the module never counts it as its own.
        expect(routesResult(run, 'h1').data).toMatchObject({
          repaired: true,
          removed: [],
          conflicts: [],
          errors: [],
        });
      }
      expect(await show()).toEqual(before);
    });

    it('when a managed route is altered by hand (same identity, another gateway), then it is restored, with a drift_repaired event (found altered)', async () => {
      const id = route.altered;
      const key = keyOf('altered');
      const before = await api.lastEventId(id);

      // Same destination, table, metric and marker, so the same identity: now via h3.
      const altered = await sh(
        fleet.lab,
        'h1',
        `ip route replace ${key.to} via ${ipv4(3)} dev eth0 metric ${key.metric} proto ${ROUTE_PROTO}
         ip -j route show ${key.to} metric ${key.metric}`,
      );
      expect(JSON.parse(altered)).toEqual([expect.objectContaining({ gateway: ipv4(3) })]);
      const alteredAt = new Date();

      const restored = await kernelWhen(
        fleet.lab,
        'h1',
        `${key.to} via ${ipv4(2)} again`,
        (routes) => findRoute(owned(routes), key)?.gateway === ipv4(2),
        REPAIR_BOUND_MS,
      );
      // Replaced in place: still exactly one route for that destination in the main table.
      expect(restored.filter((r) => r.to === key.to && r.table === 254)).toEqual([
        expect.objectContaining({ gateway: ipv4(2), dev: 'eth0', metric: key.metric }),
      ]);

      const drift = await api.eventAfter(id, 'drift_repaired', before);
      expect(drift).toMatchObject({
        actor: 'reconciler',
        detail: { host: 'h1', found: 'altered' },
      });
      const run = await api.getRun(drift.detail.run_id as string);
      expect(new Date(run.finished_at!).getTime()).toBeGreaterThan(alteredAt.getTime());
      const data = routesResult(run, 'h1').data;
      expect(ids(data.replaced)).toEqual([id]);
      expect(data).toMatchObject({ added: [], removed: [] });
      expect((await api.getRoute(id)).sync.state).toBe('in_sync');
    });

    it('when a host is in sync, then its convergence run changes nothing: the routes result is unchanged, no route gets an event, no row is rewritten', async () => {
      const rows = await Promise.all(names.map((n) => api.getRoute(route[n])));
      expect(rows.map((r) => r.sync.state)).toEqual(names.map(() => 'in_sync'));
      const eventsBefore = await Promise.all(names.map((n) => api.events(route[n])));
      const kernelBefore = await ownedRoutes(fleet.lab, 'h1');
      const since = new Date();

      const run = await api.settledRunAfter('h1', since);
      expect(run).toMatchObject({
        kind: 'apply',
        hosts: ['h1'],
        status: 'succeeded',
        requested_by: 'reconciler',
      });
      const listed = await server.request('GET', '/v1/runs?kind=apply&host=h1&limit=20', {
        token: 'viewer',
      });
      expect(listed.status, listed.text).toBe(200);
      expect(listed.body.items.map((r: { id: string }) => r.id)).toContain(run.id);
      expect(run.summary.h1).toMatchObject({ status: 'ok', changed: 0, failures: 0 });
      const result = routesResult(run, 'h1');
      expect(result).toMatchObject({ status: 'ok', changed: false });
      expect(result.data).toMatchObject({
        changed: false,
        repaired: true,
        added: [],
        replaced: [],
        removed: [],
        conflicts: [],
        errors: [],
        unchanged_count: names.length,
      });

      expect(await Promise.all(names.map((n) => api.events(route[n])))).toEqual(eventsBefore);
      expect(await Promise.all(names.map((n) => api.getRoute(route[n])))).toEqual(rows);
      expect(await ownedRoutes(fleet.lab, 'h1')).toEqual(kernelBefore);
    });
  },
);

describe(
  `periodic convergence with REPAIR_DRIFT=false (CONVERGE_INTERVAL_S=${INTERVAL_S}), managing h3`,
  { timeout: T },
  () => {
    // Starts after the first describe's server has stopped, and never writes to h1.
    const server = useTestServer(() => ({
      INVENTORY: fleet.lab.inventoryPath,
      ...SERVER_ENV,
      REPAIR_DRIFT: 'false',
    }));
    const api = probes(server);

    it('when a managed route is deleted by hand, then it stays deleted and becomes drifted with a drift_detected event; a later write to the host puts it back in sync', async () => {
      const key = { to: '203.0.113.160/28' };
      const created = await createRoute(server, { host: 'h3', to: key.to, via: ipv4(2) });
      expect(created.sync).toMatchObject({ state: 'in_sync' });
      const id = created.id;

      await nsExec(fleet.lab, 'h3', ['ip', 'route', 'del', key.to, 'proto', ROUTE_PROTO]);
      const deletedAt = new Date();

      const drifted = await poll(
        'the route drifted',
        async () => {
          const r = await api.getRoute(id);
          return r.sync.state === 'drifted' ? r : undefined;
        },
        REPAIR_BOUND_MS,
        500,
      );
      expect(drifted).toMatchObject({ status: 'active', sync: { conflict: null, retry_at: null } });
      expect(drifted.sync.error).toMatch(/REPAIR_DRIFT/);

      // The run that set it drifted recorded the event (a later one may have too).
      const detected = await poll(
        'its drift_detected event',
        async () =>
          (await api.events(id)).find(
            (e) => e.action === 'drift_detected' && e.detail.run_id === drifted.sync.run_id,
          ),
        REPAIR_BOUND_MS,
        500,
      );
      expect(detected).toMatchObject({
        actor: 'reconciler',
        from: 'active',
        to: 'active',
        detail: { host: 'h3', found: 'missing' },
      });
      const run = await api.getRun(detected.detail.run_id as string);
      expect(run).toMatchObject({ kind: 'apply', hosts: ['h3'], status: 'succeeded' });
      expect(new Date(run.finished_at!).getTime()).toBeGreaterThan(deletedAt.getTime());
      // The module reported what it would add, and added nothing.
      const data = routesResult(run, 'h3').data;
      expect(data.repaired).toBe(false);
      expect(ids(data.added)).toEqual([id]);

      // A further convergence run leaves it so: still missing, still drifted.
      const later = await api.settledRunAfter('h3', new Date(run.finished_at!));
      expect(routesResult(later, 'h3').data).toMatchObject({ repaired: false });
      expect(findRoute(await ownedRoutes(fleet.lab, 'h3'), key)).toBeUndefined();
      expect((await api.getRoute(id)).sync.state).toBe('drifted');
      expect((await api.events(id)).map((e) => e.action)).not.toContain('drift_repaired');

      // A write to the host (another route) is carried by a run that makes the host match.
      const other = await createRoute(server, { host: 'h3', to: '203.0.113.176/28', via: ipv4(2) });
      expect(other.sync).toMatchObject({ state: 'in_sync' });
      const writeRunId = (other.sync as { run_id: string }).run_id;
      expect(findRoute(await ownedRoutes(fleet.lab, 'h3'), key)).toMatchObject({
        gateway: ipv4(2),
        dev: 'eth0',
      });
      expect((await api.getRoute(id)).sync).toMatchObject({
        state: 'in_sync',
        error: null,
        run_id: writeRunId,
      });
      const written = routesResult(await api.getRun(writeRunId), 'h3').data;
      expect(written.repaired).toBe(true);
      expect(ids(written.added).sort()).toEqual([id, other.id].sort());
      // Put back by the write, not by convergence: no drift_repaired event.
      expect((await api.events(id)).map((e) => e.action)).not.toContain('drift_repaired');
    });
  },
);
