import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import { findRoute, ownedRoutes, type KernelRoute } from '../../helpers/routes.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

// IPv6, a non-main table, metrics and device-only routes, as the kernel ends up holding them.
const T = 90_000;

describe('routes of every shape, on a lab of 2 hosts', { timeout: T }, () => {
  const fleet = useLab(2);
  let server: TestServer;
  let ids: Record<string, string>;
  let kernel: KernelRoute[];

  const h2 = () => fleet.lab.hosts[1]!;

  beforeAll(async () => {
    server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath });
    // One batch, so one apply run installs them all.
    const shapes = {
      v6via: { to: '2001:db8:f001::/48', via: h2().ipv6 },
      v6table: { to: '2001:db8:f002::/48', via: h2().ipv6, table: 100, metric: 300 },
      v4table: { to: '203.0.113.0/25', via: h2().ipv4, table: 100 },
      metricLow: { to: '203.0.113.128/25', via: h2().ipv4, metric: 10 },
      metricHigh: { to: '203.0.113.128/25', via: fleet.lab.gatewayV4, metric: 20 },
      v4dev: { to: '203.0.113.16/28', dev: 'eth0' },
      v6dev: { to: '2001:db8:f003::/48', dev: 'eth0' },
    };
    const res = await server.request('POST', '/v1/routes?wait=60', {
      body: Object.values(shapes).map((s) => ({ host: 'h1', ...s })),
    });
    if (res.status !== 201) throw new Error(`batch create: ${res.status} ${res.text}`);
    const items = res.body.items as { route: { id: string; sync: { state: string } } }[];
    ids = Object.fromEntries(Object.keys(shapes).map((name, i) => [name, items[i]!.route.id]));
    expect(res.body.counts).toEqual({ in_sync: 7 });
    kernel = await ownedRoutes(fleet.lab, 'h1');
  }, T);

  afterAll(async () => {
    await server?.close();
  }, T);

  it('when an IPv6 route has a gateway, then the kernel has it with IPv6 default metric 1024', () => {
    expect(findRoute(kernel, { to: '2001:db8:f001::/48' })).toEqual({
      family: 6,
      to: '2001:db8:f001::/48',
      table: 254,
      metric: 1024,
      protocol: '147',
      gateway: h2().ipv6,
      dev: 'eth0',
    });
  });

  it('when routes name table 100, then they are in table 100 and not in main', () => {
    expect(findRoute(kernel, { to: '203.0.113.0/25', table: 100 })).toMatchObject({
      gateway: h2().ipv4,
      metric: 0,
    });
    expect(findRoute(kernel, { to: '2001:db8:f002::/48', table: 100 })).toMatchObject({
      gateway: h2().ipv6,
      metric: 300,
    });
    expect(findRoute(kernel, { to: '203.0.113.0/25' })).toBeUndefined();
  });

  it('when one destination has two metrics, then both routes coexist, each with its gateway', () => {
    expect(
      kernel.filter((r) => r.to === '203.0.113.128/25').map((r) => [r.metric, r.gateway]),
    ).toEqual(
      expect.arrayContaining([
        [10, h2().ipv4],
        [20, fleet.lab.gatewayV4],
      ]),
    );
    expect(kernel.filter((r) => r.to === '203.0.113.128/25')).toHaveLength(2);
  });

  it('when a route names only a device, then the kernel has it on eth0 with no gateway', () => {
    expect(findRoute(kernel, { to: '203.0.113.16/28' })).toMatchObject({
      dev: 'eth0',
      gateway: null,
    });
    expect(findRoute(kernel, { to: '2001:db8:f003::/48', metric: 1024 })).toMatchObject({
      dev: 'eth0',
      gateway: null,
    });
  });

  it('when the lower-metric route is deleted, then only it leaves the kernel', async () => {
    const del = await server.request('DELETE', `/v1/routes/${ids.metricLow}`);
    expect(del.status, del.text).toBe(200);
    const after = await ownedRoutes(fleet.lab, 'h1');
    expect(after.filter((r) => r.to === '203.0.113.128/25').map((r) => r.metric)).toEqual([20]);
    // Everything else is as it was.
    expect(after).toHaveLength(kernel.length - 1);
  });

  it('when a route is patched to another metric and gateway, then the kernel swaps it', async () => {
    const patched = await server.request('PATCH', `/v1/routes/${ids.v4dev}`, {
      body: { via: h2().ipv4, dev: null, metric: 7 },
    });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toMatchObject({ metric: 7, via: h2().ipv4, dev: null });
    const after = (await ownedRoutes(fleet.lab, 'h1')).filter((r) => r.to === '203.0.113.16/28');
    expect(after).toEqual([expect.objectContaining({ metric: 7, gateway: h2().ipv4 })]);
  });
});
