import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import { canonicalPrefix } from '../../../src/routes/kernel-route.ts';
import { useLab } from '../../helpers/lab.ts';
import { expectProblem } from '../../helpers/problem.ts';
import { findRoute, kernelRoutes, ownedRoutes, ROUTE_PROTO } from '../../helpers/routes.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

// routeplane touches only routes with its marker, and never cuts itself off from a host.
const T = 90_000;

describe('route ownership, on a lab of 2 hosts', { timeout: T }, () => {
  const fleet = useLab(2);
  let server: TestServer;

  // Routes other parties put on h1: a hand-made one (no proto, i.e. boot), and other protos.
  const foreign = [
    { add: ['203.0.113.64/26', 'dev', 'eth0'], key: { to: '203.0.113.64/26' }, protocol: '' },
    {
      add: ['203.0.113.192/27', 'dev', 'eth0', 'proto', 'static'],
      key: { to: '203.0.113.192/27' },
      protocol: '4',
    },
    {
      add: ['203.0.113.224/27', 'dev', 'eth0', 'proto', '99', 'table', '100'],
      key: { to: '203.0.113.224/27', table: 100 },
      protocol: '99',
    },
    {
      add: ['2001:db8:f0a0::/48', 'dev', 'eth0', 'proto', '42'],
      key: { to: '2001:db8:f0a0::/48' },
      protocol: '42',
    },
  ];

  beforeAll(async () => {
    for (const f of foreign) await nsExec(fleet.lab, 'h1', ['ip', 'route', 'add', ...f.add]);
    server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath });
  }, T);

  afterAll(async () => {
    await server?.close();
  }, T);

  const h2v4 = () => fleet.lab.hosts[1]!.ipv4;

  async function expectForeignIntact() {
    const kernel = await kernelRoutes(fleet.lab, 'h1');
    for (const f of foreign) {
      expect(findRoute(kernel, f.key), `${f.key.to} should survive`).toMatchObject({
        protocol: f.protocol,
        dev: 'eth0',
        gateway: null,
      });
    }
  }

  it('when a hand-made route has the destination, then it stays and the managed one is a conflict, reason unowned', async () => {
    const res = await server.request('POST', '/v1/routes', {
      body: { host: 'h1', to: '203.0.113.64/26', via: h2v4() },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.sync).toMatchObject({
      state: 'conflict',
      conflict: { reason: 'unowned', existing: { dst: '203.0.113.64/26', dev: 'eth0' } },
    });
    expect(res.body.sync.error).toMatch(/does not own/);
    const [row] = await server.database.db.knex('routes').where({ id: res.body.id });
    expect(row).toMatchObject({ sync_state: 'conflict', status: 'active' });
    expect(row.sync_conflict).toMatchObject({ reason: 'unowned' });

    const listed = await server.request('GET', '/v1/routes?sync=conflict', { token: 'viewer' });
    expect(listed.body.items.map((r: { id: string }) => r.id)).toContain(res.body.id);
    expect(
      findRoute(await ownedRoutes(fleet.lab, 'h1'), { to: '203.0.113.64/26' }),
    ).toBeUndefined();
    await expectForeignIntact();

    // Deleting the managed route removes nothing from the kernel: the hand-made one stays.
    const del = await server.request('DELETE', `/v1/routes/${res.body.id}`);
    expect(del.status, del.text).toBe(200);
    await expectForeignIntact();
  });

  it('when a route would change the longest-prefix match for the management address, then it is a conflict, reason lockout, and not applied', async () => {
    // The controller reaches h1 from the lab bridge, on h1's connected /28.
    const mgmt = fleet.lab.gatewayV4;
    const slash29 = canonicalPrefix(`${mgmt}/29`);
    const res = await server.request('POST', '/v1/routes', {
      body: [
        { host: 'h1', to: `${mgmt}/32`, via: h2v4() },
        // Longer than the connected /28: it captures too.
        { host: 'h1', to: slash29, via: h2v4(), metric: 5 },
      ],
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.counts).toEqual({ conflict: 2 });
    for (const item of res.body.items as { route: { sync: { error: string } } }[]) {
      expect(item.route.sync).toMatchObject({
        state: 'conflict',
        conflict: { reason: 'lockout', management_address: mgmt },
      });
      expect(item.route.sync.error).toContain(mgmt);
    }
    const kernel = await kernelRoutes(fleet.lab, 'h1');
    expect(findRoute(kernel, { to: `${mgmt}/32` })).toBeUndefined();
    expect(findRoute(kernel, { to: slash29 })).toBeUndefined();
    await expectForeignIntact();
    for (const item of res.body.items as { route: { id: string } }[]) {
      expect((await server.request('DELETE', `/v1/routes/${item.route.id}`)).status).toBe(200);
    }
  });

  it('when routes contain the management address but do not win its longest-prefix match, then they are applied', async () => {
    const mgmt = fleet.lab.gatewayV4;
    const res = await server.request('POST', '/v1/routes', {
      body: [
        // A default route behind the lab's own (metric 0): the connected /28 still wins.
        { host: 'h1', to: '0.0.0.0/0', via: h2v4(), metric: 10 },
        // The connected prefix itself at a worse metric.
        { host: 'h1', to: fleet.lab.prefixV4, via: h2v4(), metric: 5 },
        // Other tables are not consulted for the controller's traffic.
        { host: 'h1', to: `${mgmt}/32`, via: h2v4(), table: 100 },
      ],
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.counts).toEqual({ in_sync: 3 });
    const owned = await ownedRoutes(fleet.lab, 'h1');
    expect(findRoute(owned, { to: '0.0.0.0/0', metric: 10 })).toMatchObject({ gateway: h2v4() });
    expect(findRoute(owned, { to: fleet.lab.prefixV4, metric: 5 })).toMatchObject({
      gateway: h2v4(),
    });
    expect(findRoute(owned, { to: `${mgmt}/32`, table: 100 })).toMatchObject({ gateway: h2v4() });
    // Still reachable: the next apply (the deletes) goes through.
    for (const item of res.body.items as { route: { id: string } }[]) {
      const del = await server.request('DELETE', `/v1/routes/${item.route.id}?wait=60`);
      expect(del.status, del.text).toBe(200);
      expect(del.body.sync.state).toBe('in_sync');
    }
    const after = await ownedRoutes(fleet.lab, 'h1');
    expect(findRoute(after, { to: '0.0.0.0/0', metric: 10 })).toBeUndefined();
    expect(findRoute(after, { to: `${mgmt}/32`, table: 100 })).toBeUndefined();
    await expectForeignIntact();
  });

  it('when the refused lockout route is sent again with force: true, then it is applied', async () => {
    // A host route to the bridge straight out of eth0: it wins the match, yet carries the
    // controller's traffic the way the connected /28 did, so h1 stays reachable.
    const mgmt = fleet.lab.gatewayV4;
    const route = { host: 'h1', to: `${mgmt}/32`, dev: 'eth0' };
    const key = { to: `${mgmt}/32` };
    const refused = await server.request('POST', '/v1/routes', { body: route });
    expect(refused.status, refused.text).toBe(201);
    expect(refused.body).toMatchObject({
      force: false,
      sync: { state: 'conflict', conflict: { reason: 'lockout', management_address: mgmt } },
    });
    expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), key)).toBeUndefined();

    // Not the same route any more: POST points at it, PUT changes it.
    const posted = await server.request('POST', '/v1/routes', { body: { ...route, force: true } });
    expectProblem(posted, 409, 'conflict');
    expect(posted.body.route_id).toBe(refused.body.id);
    const forced = await server.request('PUT', '/v1/routes', { body: { ...route, force: true } });
    expect(forced.status, forced.text).toBe(200);
    expect(forced.body).toMatchObject({
      id: refused.body.id,
      force: true,
      sync: { state: 'in_sync', conflict: null, error: null },
    });
    expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), key)).toMatchObject({
      dev: 'eth0',
      gateway: null,
    });
    // h1 is still reachable with the route in place: the next apply (another route) goes
    // through, and the forced route stays as it is.
    const next = await server.request('POST', '/v1/routes?wait=60', {
      body: { host: 'h1', to: '203.0.113.40/29', via: h2v4() },
    });
    expect(next.status, next.text).toBe(201);
    expect(next.body.sync.state).toBe('in_sync');
    expect((await server.request('GET', `/v1/routes/${refused.body.id}`)).body.sync.state).toBe(
      'in_sync',
    );
    expect((await server.request('DELETE', `/v1/routes/${next.body.id}`)).status).toBe(200);
    const del = await server.request('DELETE', `/v1/routes/${refused.body.id}?wait=60`);
    expect(del.status, del.text).toBe(200);
    expect(del.body.sync.state).toBe('in_sync');
    expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), key)).toBeUndefined();
    await expectForeignIntact();
  });

  it('when routeplane applies and removes its own routes, then routes of other protocols survive', async () => {
    const created = await server.request('POST', '/v1/routes', {
      body: [
        { host: 'h1', to: '203.0.113.0/26', via: h2v4() },
        { host: 'h1', to: '2001:db8:f0b0::/48', dev: 'eth0' },
      ],
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body.counts).toEqual({ in_sync: 2 });
    const owned = await ownedRoutes(fleet.lab, 'h1');
    expect(findRoute(owned, { to: '203.0.113.0/26' })?.protocol).toBe(ROUTE_PROTO);
    await expectForeignIntact();

    // Both deletes at once: they share a run (or two, one after the other).
    const deletes = await Promise.all(
      (created.body.items as { route: { id: string } }[]).map((item) =>
        server.request('DELETE', `/v1/routes/${item.route.id}?wait=60`),
      ),
    );
    expect(deletes.map((d) => d.status)).toEqual([200, 200]);
    const after = await ownedRoutes(fleet.lab, 'h1');
    expect(findRoute(after, { to: '203.0.113.0/26' })).toBeUndefined();
    expect(findRoute(after, { to: '2001:db8:f0b0::/48', metric: 1024 })).toBeUndefined();
    await expectForeignIntact();
  });
});
