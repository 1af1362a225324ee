import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kernelGateways, makeGateway, SERVICE_NET, setLink } from '../../helpers/gateways.ts';
import { useLab } from '../../helpers/lab.ts';
import { poll } from '../../helpers/routes.ts';
import { sleep } from '../../helpers/runs.ts';
import { useTestServer } from '../../helpers/server.ts';

// ECMP over two gateways (g1 = h1, g2 = h2) on h3, then a gateway that flaps under a route of
// h4 with preempt. Convergence runs every 2 s, so an unchanged ECMP route is re-applied often.
const T = 240_000;
const MOVE_MS = 20_000;

interface ApiRoute {
  id: string;
  active_via: string | string[];
  degraded: boolean;
  candidates: { via: string; health: string }[];
  sync: { state: string };
}

interface ApiRun {
  id: string;
  kind: string;
  hosts: string[];
  started_at: string | null;
  status: string;
  results: { host: string; module: string; data: Record<string, unknown> }[];
}

describe('ECMP and a flapping gateway, on a lab of 4 hosts', { timeout: T }, () => {
  const fleet = useLab(4);
  const server = useTestServer(
    () => ({
      INVENTORY: fleet.lab.inventoryPath,
      WATCH_HOSTS: 'true',
      FAILOVER_CHECKS: 'true',
      CONVERGE_INTERVAL_S: '2',
    }),
    T,
  );
  const addr = (h: string) => fleet.lab.hosts.find((x) => x.name === h)!.ipv4;
  const listeners: { kill(): void }[] = [];
  const get = async (id: string) =>
    (await server.request('GET', `/v1/routes/${id}`)).body as unknown as ApiRoute;
  const kernelIs = (host: string, gateways: string[]) =>
    poll(
      `${host} with ${gateways.join(' and ')}`,
      async () =>
        (await kernelGateways(fleet.lab, host, SERVICE_NET)).join() === [...gateways].sort().join()
          ? true
          : undefined,
      MOVE_MS,
    );

  beforeAll(async () => {
    listeners.push(await makeGateway(fleet.lab, 'h1', 'g1'));
    listeners.push(await makeGateway(fleet.lab, 'h2', 'g2'));
  }, T);

  afterAll(() => {
    for (const l of listeners) l.kill();
  });

  describe('ecmp', () => {
    let id = '';

    it('when a route is ecmp over both gateways, then the kernel holds both nexthops', async () => {
      const res = await server.request('POST', '/v1/routes', {
        body: {
          host: 'h3',
          to: SERVICE_NET,
          via: [addr('h1'), addr('h2')],
          mode: 'ecmp',
          hold_down_s: 3,
          health_check: { type: 'icmp', interval_s: 1, timeout_s: 0.5 },
        },
      });
      expect(res.status, res.text).toBe(201);
      id = res.body.id as string;
      await kernelIs('h3', [addr('h1'), addr('h2')]);
    });

    it('when one gateway goes down, then one nexthop is left; when it is back, then two again', async () => {
      await setLink(fleet.lab, 'h1', false);
      await kernelIs('h3', [addr('h2')]);
      expect((await get(id)).active_via).toEqual([addr('h2')]);
      await setLink(fleet.lab, 'h1', true);
      await kernelIs('h3', [addr('h1'), addr('h2')]);
      expect((await get(id)).active_via).toEqual([addr('h1'), addr('h2')]);
    });

    it('when convergence re-applies the unchanged multipath route, then the module reports it unchanged', async () => {
      const since = Date.now();
      const run = await poll(
        'a convergence run of h3 after the rejoin',
        async () => {
          const list = await server.request('GET', '/v1/runs?kind=apply&host=h3&limit=20');
          for (const r of (list.body as { items: ApiRun[] }).items) {
            if (r.status !== 'succeeded' || Date.parse(r.started_at ?? '') < since) continue;
            const full = (await server.request('GET', `/v1/runs/${r.id}`))
              .body as unknown as ApiRun;
            const mine = full.results.find(
              (x) => x.host === 'h3' && x.module === 'routeplane_routes',
            );
            if (mine) return mine;
          }
          return undefined;
        },
        MOVE_MS,
      );
      expect(run.data).toMatchObject({ changed: false, unchanged_count: 1, replaced: [] });
      const events = await server.request('GET', `/v1/routes/${id}/events`);
      const actions = (events.body as { items: { action: string }[] }).items.map((e) => e.action);
      expect(actions).not.toContain('drift_repaired');
      expect((await get(id)).sync.state).toBe('in_sync');
      await server.request('DELETE', `/v1/routes/${id}`);
    });
  });

  it('when a preempting route’s first gateway flaps (4 s down, 4 s up, for 40 s), then it switches at least twice and returns to it at most once per hold_down_s', async () => {
    const res = await server.request('POST', '/v1/routes', {
      body: {
        host: 'h4',
        to: SERVICE_NET,
        via: [addr('h1'), addr('h2')],
        preempt: true,
        hold_down_s: 15,
        health_check: { type: 'icmp', interval_s: 1, timeout_s: 0.5 },
      },
    });
    expect(res.status, res.text).toBe(201);
    const id = res.body.id as string;
    await poll('g1 healthy from h4', async () => {
      const r = await get(id);
      return r.candidates.every((c) => c.health === 'healthy') ? r : undefined;
    });
    const end = Date.now() + 40_000;
    while (Date.now() < end) {
      await setLink(fleet.lab, 'h1', false);
      await sleep(4_000);
      await setLink(fleet.lab, 'h1', true);
      await sleep(4_000);
    }
    const events = (await server.request('GET', `/v1/routes/${id}/events`)).body as {
      items: { action: string; at: string; detail: { to: string; reason: string } }[];
    };
    const switches = events.items.filter((e) => e.action === 'failover');
    expect(switches.length).toBeGreaterThanOrEqual(2);
    const returns = switches.filter((e) => e.detail.to === addr('h1'));
    for (let i = 1; i < returns.length; i++) {
      const gap = Date.parse(returns[i]!.at) - Date.parse(returns[i - 1]!.at);
      expect(gap).toBeGreaterThanOrEqual(15_000);
    }
    // Every return waited hold_down_s after the switch before it.
    for (const r of returns) {
      const before = switches.filter((s) => Date.parse(s.at) < Date.parse(r.at)).pop();
      if (before) expect(Date.parse(r.at) - Date.parse(before.at)).toBeGreaterThanOrEqual(15_000);
    }
  });
});
