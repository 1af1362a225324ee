import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import {
  answerFrom,
  kernelGateways,
  makeGateway,
  SERVICE_NET,
  setLink,
} from '../../helpers/gateways.ts';
import { useLab } from '../../helpers/lab.ts';
import { poll } from '../../helpers/routes.ts';
import { sleep } from '../../helpers/runs.ts';
import { useTestServer } from '../../helpers/server.ts';
import {
  everyMessage,
  messageSchema,
  openSocket,
  type TestSocket,
} from '../../helpers/ws-client.ts';

// Two lab hosts are gateways g1 (h1) and g2 (h2), each holding 203.0.113.10 with a listener
// that answers its name; h3, h4 and h5 route 203.0.113.0/24 via [g1, g2] with an icmp check
// every second. Each step checks the API, every kernel, and who answers a real connection.
const T = 240_000;
const MOVE_MS = 20_000;
const TARGETS = ['h3', 'h4', 'h5'] as const;

interface ApiRoute {
  id: string;
  host: string;
  active_via: string;
  degraded: boolean;
  candidates: { via: string; health: string }[];
  last_switch: { at: string; from: string; to: string; reason: string } | null;
}

describe('route failover between two gateways, on a lab of 5 hosts', { timeout: T }, () => {
  const fleet = useLab(5);
  const server = useTestServer(
    () => ({
      INVENTORY: fleet.lab.inventoryPath,
      WATCH_HOSTS: 'true',
      FAILOVER_CHECKS: 'true',
      METRICS_PORT: '0',
    }),
    T,
  );
  const addr = (h: string) => fleet.lab.hosts.find((x) => x.name === h)!.ipv4;
  const g1 = () => addr('h1');
  const g2 = () => addr('h2');
  const ids = new Map<string, string>();
  const listeners: { kill(): void }[] = [];
  let socket: TestSocket;

  const route = async (host: string) =>
    (await server.request('GET', `/v1/routes/${ids.get(host)}`)).body as unknown as ApiRoute;
  const events = async (host: string) =>
    (await server.request('GET', `/v1/routes/${ids.get(host)}/events`)).body as unknown as {
      items: { action: string; detail: Record<string, unknown> }[];
    };

  /** Waits until `host` uses `gw` in the API, in its kernel, and for a real connection. */
  const onGateway = (host: string, gw: string, name: string) =>
    poll(
      `${host} on ${name}`,
      async () => {
        const r = await route(host);
        if (r.active_via !== gw) return undefined;
        if ((await kernelGateways(fleet.lab, host, SERVICE_NET)).join() !== gw) return undefined;
        return (await answerFrom(fleet.lab, host)) === name ? r : undefined;
      },
      MOVE_MS,
    );

  beforeAll(async () => {
    socket = await openSocket(server.url, { token: 'viewer' });
    socket.send({ type: 'subscribe', topics: ['failover'] });
    listeners.push(await makeGateway(fleet.lab, 'h1', 'g1'));
    listeners.push(await makeGateway(fleet.lab, 'h2', 'g2'));
    for (const host of TARGETS) {
      const res = await server.request('POST', '/v1/routes', {
        body: {
          host,
          to: SERVICE_NET,
          via: [g1(), g2()],
          health_check: { type: 'icmp', interval_s: 1, timeout_s: 0.5 },
          preempt: host === 'h5',
          hold_down_s: host === 'h5' ? 8 : 4,
        },
      });
      expect(res.status, res.text).toBe(201);
      ids.set(host, res.body.id as string);
    }
  }, T);

  afterAll(async () => {
    for (const l of listeners) l.kill();
    await socket?.close();
  });

  it('when the routes are created, then every target uses g1 and sees both gateways healthy', async () => {
    for (const host of TARGETS) {
      await onGateway(host, g1(), 'g1');
      await poll(`${host} sees both healthy`, async () => {
        const r = await route(host);
        return r.candidates.every((c) => c.health === 'healthy') ? r : undefined;
      });
    }
  });

  let switchedAt = 0;

  it('when g1 loses its link, then every route moves to g2 within seconds, with one switch event each', async () => {
    await setLink(fleet.lab, 'h1', false);
    for (const host of TARGETS) {
      const r = await onGateway(host, g2(), 'g2');
      expect(r.last_switch).toMatchObject({ from: g1(), to: g2(), reason: 'gateway_failed' });
      expect(r.degraded).toBe(false);
      expect(r.candidates.find((c) => c.via === g1())?.health).toBe('unhealthy');
      const { items } = await events(host);
      expect(items.filter((e) => e.action === 'failover')).toHaveLength(1);
      expect(items).toContainEqual(
        expect.objectContaining({
          action: 'gateway_health',
          detail: expect.objectContaining({ gateway: g1(), to: 'unhealthy', checking_point: host }),
        }),
      );
    }
    switchedAt = Date.parse((await route('h5')).last_switch!.at);
  });

  it('when routes switch, then the failover topic streams each switch and health change, and /metrics counts them', async () => {
    for (const host of TARGETS) {
      const id = ids.get(host)!;
      await socket.next(
        (m) =>
          m.type === 'event' &&
          m.topic === 'failover' &&
          m.event.kind === 'failover' &&
          m.event.route_id === id &&
          m.event.to.join() === g2(),
      );
      await socket.next(
        (m) =>
          m.type === 'event' &&
          m.event.kind === 'gateway_health' &&
          m.event.route_id === id &&
          m.event.gateway === g1() &&
          m.event.to === 'unhealthy',
      );
      // The topic's object for the route shows where it stands now.
      await socket.next(
        (m) => m.type === 'diff' && m.topic === 'failover' && m.changed?.[id]?.active_via === g2(),
      );
    }
    const text = await (await fetch(server.metricsUrl!)).text();
    const switches = /^routeplane_failover_switches_total\{reason="gateway_failed"\} (\d+)$/m.exec(
      text,
    );
    expect(Number(switches?.[1])).toBeGreaterThanOrEqual(TARGETS.length);
    expect(text).toMatch(/^routeplane_gateway_health_changes_total\{health="unhealthy"\} [1-9]/m);
    expect(text).toMatch(/^routeplane_probe_results_total\{check="icmp",outcome="fail"\} [1-9]/m);
    // One prober per target host, each running its checks.
    expect(text).toMatch(/^routeplane_probers\{state="watching"\} 3$/m);
  });

  it('when g1 comes back, then the preempting route returns no sooner than hold_down_s after its switch, and the others stay on g2', async () => {
    await setLink(fleet.lab, 'h1', true);
    const upAt = Date.now();
    const back = await onGateway('h5', g1(), 'g1');
    expect(back.last_switch?.reason).toBe('preempt');
    expect(Date.parse(back.last_switch!.at) - switchedAt).toBeGreaterThanOrEqual(8_000);
    // hold_down_s + rise x interval_s + 5 s after g1 recovered.
    await sleep(Math.max(0, upAt + (4 + 2 * 1 + 5) * 1000 - Date.now()));
    for (const host of ['h3', 'h4']) {
      expect((await route(host)).active_via).toBe(g2());
      expect(await kernelGateways(fleet.lab, host, SERVICE_NET)).toEqual([g2()]);
      expect(await answerFrom(fleet.lab, host)).toBe('g2');
    }
  });

  it('when g1 drops its replies to one target only, then only that target’s route moves', async () => {
    // Everyone back on g1 first: preempt on, the hold-down long over.
    for (const host of ['h3', 'h4']) {
      const res = await server.request('PATCH', `/v1/routes/${ids.get(host)}`, {
        body: { preempt: true },
      });
      expect(res.status, res.text).toBe(200);
    }
    for (const host of TARGETS) await onGateway(host, g1(), 'g1');
    const nft = (rule: string) => nsExec(fleet.lab, 'h1', ['nft', rule]);
    await nft('add table inet rptest');
    await nft('add chain inet rptest out { type filter hook output priority 0; }');
    await nft(`add rule inet rptest out ip daddr ${addr('h3')} icmp type echo-reply drop`);
    try {
      await onGateway('h3', g2(), 'g2');
      await sleep(3_000);
      for (const host of ['h4', 'h5']) {
        expect((await route(host)).active_via).toBe(g1());
        expect(await kernelGateways(fleet.lab, host, SERVICE_NET)).toEqual([g1()]);
      }
    } finally {
      await nft('delete table inet rptest');
    }
  });

  it('when both gateways fail, then the routes stay as they were, degraded; the gateway not installed coming back is used', async () => {
    for (const host of TARGETS) await onGateway(host, g1(), 'g1');
    // g2 first, so that each route is known to have no healthy spare when g1 goes.
    await setLink(fleet.lab, 'h2', false);
    for (const host of TARGETS) {
      await poll(`${host} sees g2 unhealthy`, async () => {
        const r = await route(host);
        return r.candidates.find((c) => c.via === g2())?.health === 'unhealthy' ? r : undefined;
      });
    }
    await setLink(fleet.lab, 'h1', false);
    for (const host of TARGETS) {
      const r = await poll(
        `${host} degraded`,
        async () => {
          const x = await route(host);
          return x.degraded ? x : undefined;
        },
        MOVE_MS,
      );
      expect(r.active_via).toBe(g1());
      expect(await kernelGateways(fleet.lab, host, SERVICE_NET)).toEqual([g1()]);
    }
    await setLink(fleet.lab, 'h2', true);
    for (const host of TARGETS) {
      const r = await onGateway(host, g2(), 'g2');
      expect(r.degraded).toBe(false);
    }
    await setLink(fleet.lab, 'h1', true);
  });
});

describe('the messages of the failover topic', () => {
  it('are all described by docs/ws-messages.schema.json', async () => {
    const validate = await messageSchema('ServerMessage');
    expect(everyMessage.some((m) => m.type === 'event')).toBe(true);
    for (const m of everyMessage) expect(validate(m), JSON.stringify(validate.errors)).toBe(true);
  });
});
