import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import { canonicalPrefix } from '../../../src/routes/kernel-route.ts';
import { useLab } from '../../helpers/lab.ts';
import { expectProblem } from '../../helpers/problem.ts';
import { findRoute, kernelRoutes, ownedRoutes, ROUTE_PROTO } from '../../helpers/routes.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

// routeplane touches only routes with its marker, and never cuts itself off from a host.
const T = 180_000;

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

  it(
    'when a capturing route is forced on a group where it captures only one host, then that host gets it and stays reachable',
    async () => {
      // A host route to the bridge straight out of eth0: it wins h1's match, yet carries the
      // controller's traffic the way the connected /28 did, so h1 stays reachable.
      const mgmt = fleet.lab.gatewayV4;
      const route = { to: `${mgmt}/32`, dev: 'eth0' };
      const key = { to: `${mgmt}/32` };
      const refused = await server.request('POST', '/v1/routes?wait=60', {
        body: { host: 'h1', ...route },
      });
      expect(refused.status, refused.text).toBe(201);
      expect(refused.body).toMatchObject({
        force: false,
        sync: { state: 'conflict', conflict: { reason: 'lockout', management_address: mgmt } },
      });
      expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), key)).toBeUndefined();
      expect((await server.request('DELETE', `/v1/routes/${refused.body.id}`)).status).toBe(200);

      // Forced on h1 alone it would cut routeplane off from every host it targets: refused.
      expectProblem(
        await server.request('POST', '/v1/routes', { body: { host: 'h1', ...route, force: true } }),
        409,
        'conflict',
      );
      // h2 reaches the bridge by a /32 of its own already: there the route captures nothing.
      await nsExec(fleet.lab, 'h2', ['ip', 'route', 'add', `${mgmt}/32`, 'dev', 'eth0']);
      const gathered = await server.request('GET', '/v1/hosts/h2?refresh=true', {
        token: 'viewer',
      });
      expect(gathered.status, gathered.text).toBe(200);
      const forced = await server.request('POST', '/v1/routes?wait=60', {
        body: [{ host: 'lab', ...route, force: true }],
      });
      expect(forced.status, forced.text).toBe(201);
      type Item = { route: { host: string; id: string; sync: unknown } };
      const itemOf = (host: string) =>
        (forced.body.items as Item[]).find((i) => i.route.host === host)!.route;
      const byHost = { h1: itemOf('h1'), h2: itemOf('h2') };
      expect(byHost.h1).toMatchObject({ force: true, sync: { state: 'in_sync', conflict: null } });
      // On h2 the kernel already has that identity, not routeplane's: never replaced.
      expect(byHost.h2).toMatchObject({
        sync: { state: 'conflict', conflict: { reason: 'unowned' } },
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
      expect((await server.request('GET', `/v1/routes/${byHost.h1.id}`)).body.sync.state).toBe(
        'in_sync',
      );
      for (const id of [next.body.id, byHost.h1.id, byHost.h2.id]) {
        const del = await server.request('DELETE', `/v1/routes/${id}?wait=60`);
        expect(del.status, del.text).toBe(200);
      }
      expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), key)).toBeUndefined();
      // h2's own route is untouched.
      expect(findRoute(await kernelRoutes(fleet.lab, 'h2'), key)).toMatchObject({ protocol: '' });
      await nsExec(fleet.lab, 'h2', ['ip', 'route', 'del', `${mgmt}/32`, 'dev', 'eth0']);
      await expectForeignIntact();
    },
    4 * T,
  );

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
