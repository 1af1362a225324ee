import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labSsh } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import { useTestServer } from '../../helpers/server.ts';
import {
  DESTINATION_PREFIX,
  bannerListeners,
  tcpBanner,
  useTopology,
} from '../../helpers/topology.ts';

// Forwarding and DNAT through a router that routeplane manages, seen as real packets:
// client (192.0.2.2) -- router (lab host h1, ip_forward on) -- destination (203.0.113.2),
// built by tests/helpers/topology.ts. The destination listens on 8080 and 9090, each
// connection answered with "destination:<port> from <peer>", so a reply names the listener
// that took the connection and the source it saw. The controller (this process) reaches h1
// over the lab bridge and must keep reaching its sshd after every step.
//
// The tests of a describe block run in order and build on each other's rules; the router
// stays managed (routeplane's table stays) from the first rule to the end of the file.
const T = 120_000;

describe('forwarding and DNAT through a managed router, with real packets', { timeout: T }, () => {
  const fleet = useLab(1);
  // Confirms are tested in firewall-confirm*.test.ts and firewall-api.test.ts; here each apply
  // would only pay their extra SSH handshake.
  const server = useTestServer(
    () => ({ INVENTORY: fleet.lab.inventoryPath, FIREWALL_CONFIRM_S: '0' }),
    T,
  );
  const net = useTopology(fleet, 'h1');
  let stopListeners: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    const { destination } = net.topology;
    stopListeners = await bannerListeners(destination.netns, 'destination', [8080, 9090]);
  }, T);

  afterAll(async () => {
    await stopListeners?.();
  });

  const router = () => net.topology.router;
  const client = () => net.topology.client;
  const destination = () => net.topology.destination;
  /** What the client gets back connecting to address:port (undefined: no connection). */
  const fromClient = (address: string, port: number) => tcpBanner(client().netns, address, port);
  /** What the router itself gets back connecting to address:port. */
  const fromRouter = (address: string, port: number) =>
    tcpBanner(router().host.netns, address, port);
  const seen = (port: number, peer: string) => `destination:${port} from ${peer}`;

  const tables = async () =>
    (await execa('ip', ['netns', 'exec', router().host.netns, 'nft', 'list', 'tables'])).stdout;

  /** Management: the controller still opens an SSH session on the router. */
  const expectManagement = async () => {
    expect(await labSsh(fleet.lab, 'h1', ['echo', 'management'])).toBe('management');
  };

  const createRule = async (body: Record<string, unknown>) => {
    const res = await server.request('POST', '/v1/firewall/rules', { token: 'operator', body });
    expect(res.status, res.text).toBe(201);
    expect(res.body.sync, res.text).toMatchObject({ state: 'in_sync', error: null });
    return res.body.id as string;
  };

  const act = async (id: string, what: 'pause' | 'resume' | 'delete') => {
    const res =
      what === 'delete'
        ? await server.request('DELETE', `/v1/firewall/rules/${id}`, { token: 'operator' })
        : await server.request('POST', `/v1/firewall/rules/${id}/${what}`, { token: 'operator' });
    expect(res.status, res.text).toBe(200);
    expect(res.body.sync, res.text).toMatchObject({ state: 'in_sync' });
    return res.body;
  };

  describe('forward rules', () => {
    it('when the router is not managed yet, then the client reaches the destination through it', async () => {
      expect(await tables()).not.toContain('routeplane');
      expect(await fromClient(destination().address, 8080)).toBe(seen(8080, client().address));
      expect(await fromClient(destination().address, 9090)).toBe(seen(9090, client().address));
      await expectManagement();
    });

    it('when the router’s first rule (an unrelated input accept) is applied, then the forward policy drops forwarded traffic, and management still works', async () => {
      await createRule({
        host: 'h1',
        chain: 'input',
        protocol: 'tcp',
        dport: ['7777'],
        action: 'accept',
        comment: 'manages the router',
      });
      expect(await tables()).toContain('table inet routeplane');
      const [to8080, to9090] = await Promise.all([
        fromClient(destination().address, 8080),
        fromClient(destination().address, 9090),
      ]);
      expect(to8080).toBeUndefined();
      expect(to9090).toBeUndefined();
      await expectManagement();
    });

    let forwardId = '';

    it('when a forward accept names the destination prefix and tcp/8080, then the client reaches that port only', async () => {
      forwardId = await createRule({
        host: 'h1',
        chain: 'forward',
        family: 'ip',
        protocol: 'tcp',
        dst: [DESTINATION_PREFIX],
        dport: ['8080'],
        action: 'accept',
      });
      expect(await fromClient(destination().address, 8080)).toBe(seen(8080, client().address));
      expect(await fromClient(destination().address, 9090)).toBeUndefined();
      await expectManagement();
    });

    it('when the forward accept is paused, then forwarding to the port stops; resumed, it passes again', async () => {
      expect(await act(forwardId, 'pause')).toMatchObject({ status: 'paused' });
      expect(await fromClient(destination().address, 8080)).toBeUndefined();
      await expectManagement();
      expect(await act(forwardId, 'resume')).toMatchObject({ status: 'active' });
      expect(await fromClient(destination().address, 8080)).toBe(seen(8080, client().address));
      await expectManagement();
    });

    it('when the forward accept is deleted, then forwarding to the port stops, and the router stays managed', async () => {
      expect(await act(forwardId, 'delete')).toMatchObject({ status: 'deleted' });
      expect(await fromClient(destination().address, 8080)).toBeUndefined();
      expect(await tables()).toContain('table inet routeplane');
      await expectManagement();
    });
  });

  describe('DNAT', () => {
    let dnatIds: string[] = [];

    it('when a prerouting dnat sends router:8080 to destination:9090 (with its forward accept), then the client’s connection reaches the 9090 listener, which sees the client', async () => {
      // Before: nothing listens on the router, and its input policy drops the attempt.
      expect(await fromClient(router().clientSide, 8080)).toBeUndefined();
      const res = await server.request('POST', '/v1/firewall/rules', {
        token: 'operator',
        body: [
          {
            host: 'h1',
            chain: 'prerouting',
            family: 'ip',
            protocol: 'tcp',
            dst: [`${router().clientSide}/32`],
            dport: ['8080'],
            action: 'dnat',
            to: { address: destination().address, port: 9090 },
          },
          {
            host: 'h1',
            chain: 'forward',
            family: 'ip',
            protocol: 'tcp',
            dst: [`${destination().address}/32`],
            dport: ['9090'],
            action: 'accept',
          },
        ],
      });
      expect(res.status, res.text).toBe(201);
      expect(res.body.counts).toEqual({ in_sync: 2 });
      dnatIds = (res.body.items as { outcome: string; rule: { id: string } }[]).map((i) => {
        expect(i.outcome).toBe('created');
        return i.rule.id;
      });
      expect(await fromClient(router().clientSide, 8080)).toBe(seen(9090, client().address));
      // Only the DNAT's own port moved: the destination's 8080 is not forwarded.
      expect(await fromClient(destination().address, 8080)).toBeUndefined();
      await expectManagement();
    });

    it('when the dnat rule is deleted, then router:8080 no longer reaches the destination', async () => {
      const [dnatId] = dnatIds;
      expect(await act(dnatId!, 'delete')).toMatchObject({ status: 'deleted' });
      expect(await fromClient(router().clientSide, 8080)).toBeUndefined();
      // The forward accept is still there: the target itself stays reachable directly.
      expect(await fromClient(destination().address, 9090)).toBe(seen(9090, client().address));
      await expectManagement();
    });

    it('when an output dnat sends destination:7070 to destination:9090, then the router’s own connection reaches the 9090 listener', async () => {
      // Before: nothing listens on 7070.
      expect(await fromRouter(destination().address, 7070)).toBeUndefined();
      await createRule({
        host: 'h1',
        chain: 'output',
        family: 'ip',
        protocol: 'tcp',
        dst: [`${destination().address}/32`],
        dport: ['7070'],
        action: 'dnat',
        to: { address: destination().address, port: 9090 },
      });
      expect(await fromRouter(destination().address, 7070)).toBe(
        seen(9090, router().destinationSide),
      );
      await expectManagement();
    });
  });

  describe('route-linked openings', () => {
    // The route is 203.0.113.128/25 via the destination, which holds 203.0.113.130 on its
    // loopback: more specific than the router's connected 203.0.113.0/24, so routeplane owns
    // it. Its opening is tcp/8080 only.
    const ROUTED = '203.0.113.130';
    let routeId = '';

    beforeAll(async () => {
      await execa('ip', [
        'netns',
        'exec',
        destination().netns,
        'ip',
        'addr',
        'add',
        `${ROUTED}/32`,
        'dev',
        'lo',
      ]);
    });

    const routeAct = async (what: 'pause' | 'resume') => {
      const res = await server.request('POST', `/v1/routes/${routeId}/${what}`, {
        token: 'operator',
      });
      expect(res.status, res.text).toBe(200);
    };

    const openings = async () =>
      (await server.request('GET', `/v1/firewall/rules?route_id=${routeId}`, { token: 'viewer' }))
        .body.items as { id: string; status: string; route_id: string; chain: string }[];

    it('when a route with allow tcp/8080 is applied on the router, then the client reaches that port through it and no other', async () => {
      expect(await fromClient(ROUTED, 8080)).toBeUndefined();
      const res = await server.request('POST', '/v1/routes', {
        token: 'operator',
        body: {
          host: 'h1',
          to: '203.0.113.128/25',
          via: destination().address,
          allow: [{ protocol: 'tcp', dport: ['8080'] }],
          delete_at: new Date(Date.now() + 600_000).toISOString(),
        },
      });
      expect(res.status, res.text).toBe(201);
      expect(res.body.allow).toEqual([{ protocol: 'tcp', dport: ['8080'], src: [] }]);
      expect(res.body.sync, res.text).toMatchObject({ state: 'in_sync' });
      routeId = res.body.id;
      const [opening] = await openings();
      expect(opening).toMatchObject({ route_id: routeId, chain: 'forward', status: 'active' });
      expect(await fromClient(ROUTED, 8080)).toBe(seen(8080, client().address));
      expect(await fromClient(ROUTED, 9090)).toBeUndefined();
      await expectManagement();
    });

    it('when the route is paused, then its opening is paused and closes; resumed, it opens again', async () => {
      await routeAct('pause');
      expect((await openings())[0]).toMatchObject({ status: 'paused' });
      expect(await fromClient(ROUTED, 8080)).toBeUndefined();
      await routeAct('resume');
      expect((await openings())[0]).toMatchObject({ status: 'active' });
      expect(await fromClient(ROUTED, 8080)).toBe(seen(8080, client().address));
    });

    it('when the route is rescheduled to expire soon, then its opening follows, forwarding to it stops when it expires and the opening is in the history as expired', async () => {
      const soon = new Date(Date.now() + 8_000).toISOString();
      const patched = await server.request('PATCH', `/v1/routes/${routeId}`, {
        token: 'operator',
        body: { delete_at: soon },
      });
      expect(patched.status, patched.text).toBe(200);
      expect((await openings())[0]).toMatchObject({ delete_at: soon });
      const deadline = Date.now() + 90_000;
      for (;;) {
        const res = await server.request('GET', `/v1/routes/${routeId}`, { token: 'viewer' });
        if (res.body.status === 'expired' && res.body.sync.state === 'in_sync') break;
        expect(Date.now(), `route still ${res.body.status}`).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 1000));
      }
      const history = await server.request(
        'GET',
        `/v1/firewall/rules/history?route_id=${routeId}`,
        {
          token: 'viewer',
        },
      );
      expect(history.body.items).toEqual([
        expect.objectContaining({
          route_id: routeId,
          status: 'expired',
          removed_reason: 'expired',
        }),
      ]);
      expect(await fromClient(ROUTED, 8080)).toBeUndefined();
      await expectManagement();
    });
  });
});
