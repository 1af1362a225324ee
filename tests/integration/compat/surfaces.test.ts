import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import {
  compatClient,
  expectDetail,
  expectMessage,
  gatewayOf,
  listed,
  listedDeleted,
  managedRoutes,
  MSG,
  type CompatClient,
} from '../../helpers/compat.ts';
import { useLab } from '../../helpers/lab.ts';
import {
  countRows,
  findRoute,
  kernelHas,
  kernelLacks,
  kernelRoutes,
} from '../../helpers/routes.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

// /routes/ and /v1/routes are two views of the same rows; a kernel route routeplane does not
// own is never taken over or removed through /routes/.
const T = 90_000;

interface V1Route {
  id: string;
  to: string;
}

describe(
  'route-manager and /v1 on the same routes, on a lab of 2 hosts with COMPAT_HOST=h1',
  { timeout: T },
  () => {
    const fleet = useLab(2);
    let server: TestServer;
    let client: CompatClient;

    beforeAll(async () => {
      server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath, COMPAT_HOST: 'h1' });
      client = compatClient(server);
    }, T);

    afterAll(async () => {
      await server?.close();
    }, T);

    const GW = () => gatewayOf(fleet.lab);
    // A second gateway on h1's link: the lab bridge's address.
    const GW2 = () => fleet.lab.gatewayV4;

    async function v1Route(to: string): Promise<V1Route> {
      const res = await server.request('GET', '/v1/routes?host=h1', { token: 'viewer' });
      expect(res.status, res.text).toBe(200);
      const found = (res.body.items as V1Route[]).filter((r) => r.to === to);
      expect(found, `${to} in /v1/routes`).toHaveLength(1);
      return found[0]!;
    }

    it('when a route is created through PUT /routes/, then /v1/routes lists it with its lifecycle and sync, and follows pause', async () => {
      const to = '203.0.113.30/32';
      expectMessage(await client.put({ to: '203.0.113.30', via: GW() }), 201, MSG.added);
      const route = await v1Route(to);
      expect(route).toMatchObject({
        host: 'h1',
        to,
        via: GW(),
        dev: null,
        table: 254,
        metric: 0,
        status: 'active',
        sync: { state: 'in_sync', error: null },
        created_by: 'operator',
      });

      expectMessage(await client.pause({ to }), 200, MSG.paused(to));
      expect(await v1Route(to)).toMatchObject({ status: 'paused', sync: { state: 'in_sync' } });
      const events = await server.request('GET', `/v1/routes/${route.id}/events`, {
        token: 'viewer',
      });
      expect(
        events.body.items.map((e: { action: string; actor: string }) => [e.action, e.actor]),
      ).toEqual([
        ['create', 'operator'],
        ['pause', 'operator'],
      ]);

      // A scheduled one is pending on both surfaces.
      const later = '203.0.113.31/32';
      const createAt = new Date(Date.now() + 3_600_000).toISOString();
      expectMessage(
        await client.put({ to: later, dev: 'eth0', create_at: createAt }),
        201,
        MSG.added,
      );
      expect(await v1Route(later)).toMatchObject({ status: 'pending', create_at: createAt });
    });

    it('when routes are made through /v1/routes for h1, then GET /routes/ lists them and /routes/deleted their removal', async () => {
      const to = '203.0.113.40/32';
      const created = await server.request('POST', '/v1/routes', {
        token: 'operator',
        body: { host: 'h1', to, dev: 'eth0' },
      });
      expect(created.status, created.text).toBe(201);
      expect(await listed(client, to)).toEqual({
        to,
        via: null,
        dev: 'eth0',
        create_at: expect.any(String),
        delete_at: null,
        active: true,
        status: 'active',
      });

      const pending = '203.0.113.41/32';
      const createAt = new Date(Date.now() + 3_600_000).toISOString();
      const scheduled = await server.request('POST', '/v1/routes', {
        token: 'operator',
        body: { host: 'h1', to: pending, via: GW(), create_at: createAt },
      });
      expect(scheduled.status, scheduled.text).toBe(201);
      expect(await listed(client, pending)).toMatchObject({
        via: GW(),
        create_at: createAt,
        active: false,
        status: 'pending',
      });

      // A route of another host is not route-manager's.
      const other = await server.request('POST', '/v1/routes', {
        token: 'operator',
        body: { host: 'h2', to: '203.0.113.42/32', dev: 'eth0' },
      });
      expect(other.status, other.text).toBe(201);
      expect(await listed(client, '203.0.113.42/32')).toBeUndefined();

      // Removed through /v1: listed as deleted by /routes/deleted; through /routes/: deleted in /v1.
      const del = await server.request('DELETE', `/v1/routes/${created.body.id}`, {
        token: 'operator',
      });
      expect(del.status, del.text).toBe(200);
      expect(await listedDeleted(client, to)).toEqual([
        expect.objectContaining({ id: created.body.id, to, status: 'deleted' }),
      ]);
      expectMessage(await client.remove({ to: pending }), 200, MSG.deleted);
      const gone = await server.request('GET', `/v1/routes/${scheduled.body.id}`, {
        token: 'viewer',
      });
      expect(gone.body).toMatchObject({ status: 'deleted', removed_by: 'operator' });
      await kernelLacks(fleet.lab, 'h1', { to });
    });

    it('when PATCH /routes/ gives an active route a new gateway, then the kernel has the new one and not the old', async () => {
      const to = '203.0.113.50/32';
      expectMessage(await client.put({ to, via: GW() }), 201, MSG.added);
      expect(await kernelHas(fleet.lab, 'h1', { to })).toMatchObject({ gateway: GW() });

      expectMessage(await client.patch({ to, via: GW2() }), 200, MSG.updated(to));
      const routes = await kernelRoutes(fleet.lab, 'h1');
      expect(routes.filter((r) => r.to === to)).toEqual([
        expect.objectContaining({ gateway: GW2(), dev: 'eth0', protocol: '147' }),
      ]);
      expect(await listed(client, to)).toMatchObject({ via: GW2(), dev: null, status: 'active' });

      // A new device replaces the gateway (route-manager's rule), in the kernel too.
      expectMessage(await client.patch({ to, dev: 'eth0' }), 200, MSG.updated(to));
      const after = await kernelRoutes(fleet.lab, 'h1');
      expect(after.filter((r) => r.to === to)).toEqual([
        expect.objectContaining({ gateway: null, dev: 'eth0', protocol: '147' }),
      ]);
      expect(await listed(client, to)).toMatchObject({ via: null, dev: 'eth0', status: 'active' });
      expect(await countRows(server.database.db.knex, 'routes', { destination: to })).toBe(1);
    });

    it('when PATCH /routes/ changes a paused route, then it stays paused and out of the kernel until activated', async () => {
      const to = '203.0.113.51/32';
      expectMessage(await client.put({ to, via: GW() }), 201, MSG.added);
      expectMessage(await client.pause({ to }), 200, MSG.paused(to));
      await kernelLacks(fleet.lab, 'h1', { to });

      expectMessage(await client.patch({ to, via: GW2() }), 200, MSG.updated(to));
      expect(await listed(client, to)).toMatchObject({
        via: GW2(),
        active: false,
        status: 'paused',
      });
      expect(findRoute(await kernelRoutes(fleet.lab, 'h1'), { to })).toBeUndefined();

      expectMessage(await client.activate({ to }), 200, MSG.activated(to));
      expect(await kernelHas(fleet.lab, 'h1', { to })).toMatchObject({ gateway: GW2() });
    });

    it('when an IPv6 route is named in different spellings, then it is one /128 route, in the kernel until deleted', async () => {
      const to = '2001:db8:f000::10/128';
      expectMessage(await client.put({ to: '2001:db8:f000::10', dev: 'eth0' }), 201, MSG.added);
      expect(await kernelHas(fleet.lab, 'h1', { to, metric: 1024 })).toMatchObject({ dev: 'eth0' });
      expectMessage(
        await client.put({ to: '2001:DB8:F000:0::10', dev: 'eth0' }),
        200,
        MSG.exists(to),
      );
      expect(await listed(client, to)).toMatchObject({ dev: 'eth0', status: 'active' });
      expect(await countRows(server.database.db.knex, 'routes', { destination: to })).toBe(1);
      expectMessage(await client.remove({ to: '2001:db8:f000:0:0::10' }), 200, MSG.deleted);
      await kernelLacks(fleet.lab, 'h1', { to, metric: 1024 });
    });

    it('when the kernel has a destination routeplane does not own, then PUT is 200 "already exists" storing nothing, and DELETE is 404 leaving it', async () => {
      const to = '203.0.113.200/32';
      await nsExec(fleet.lab, 'h1', ['ip', 'route', 'add', '203.0.113.200/32', 'dev', 'eth0']);
      const before = findRoute(await kernelRoutes(fleet.lab, 'h1'), { to });
      expect(before).toMatchObject({ protocol: '', gateway: null, dev: 'eth0' });

      expectMessage(await client.put({ to: '203.0.113.200', via: GW() }), 200, MSG.exists(to));
      expect(await countRows(server.database.db.knex, 'routes', { destination: to })).toBe(0);
      expect(await listed(client, to)).toBeUndefined();
      const list = await client.list();
      expect(list.body.system_routes).toEqual(
        expect.arrayContaining([expect.stringMatching(/^203\.0\.113\.200 dev eth0\b/)]),
      );

      expectDetail(await client.remove({ to: '203.0.113.200' }), 404, MSG.deleteNotFound(to));
      expect(findRoute(await kernelRoutes(fleet.lab, 'h1'), { to })).toEqual(before);
      expect(await countRows(server.database.db.knex, 'routes', { destination: to })).toBe(0);
      expect((await managedRoutes(fleet.lab)).map((r) => r.to)).not.toContain(to);
    });

    it('when the kernel has its default routes (ip prints them as "default"), then PUT to 0.0.0.0/0 or ::/0 is 200 "already exists" storing nothing', async () => {
      // The lab gives each host a default route of each family, not routeplane's.
      const kernel = await kernelRoutes(fleet.lab, 'h1');
      expect(findRoute(kernel, { to: '0.0.0.0/0' })).toMatchObject({
        gateway: fleet.lab.gatewayV4,
      });
      expect(kernel.some((r) => r.to === '::/0' && r.table === 254)).toBe(true);
      for (const to of ['0.0.0.0/0', '::/0']) {
        const res = await client.put({ to, via: to === '::/0' ? fleet.lab.gatewayV6 : GW() });
        expectMessage(res, 200, MSG.exists(to));
        expect(await countRows(server.database.db.knex, 'routes', { destination: to })).toBe(0);
      }
      expect(await kernelRoutes(fleet.lab, 'h1')).toEqual(kernel);
      // And route-manager's listing shows them the way `ip route` does.
      const list = await client.list();
      expect(list.body.system_routes).toEqual(
        expect.arrayContaining([
          expect.stringMatching(
            `^default via ${fleet.lab.gatewayV4.replaceAll('.', '\\.')} dev eth0`,
          ),
          expect.stringMatching(`^default via ${fleet.lab.gatewayV6} dev eth0`),
        ]),
      );
    });
  },
);
