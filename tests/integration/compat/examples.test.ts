import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  atOffset,
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
import { countRows, kernelHas, kernelLacks, poll } from '../../helpers/routes.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

// The contract's examples (shared/compat/route-manager.md), in order, with h1's kernel after
// each step. The steps build on each other: they run in the order written.
const T = 90_000;

// The contract schedules at +20 s / +40 s; shorter here, but with room for the gather the PUT
// does before it stores the route on a busy machine, so the route is stored while still pending.
const CREATE_IN_MS = 12_000;
const DELETE_IN_MS = 20_000;

describe(
  'the route-manager examples, on a lab of 2 hosts with COMPAT_HOST=h1',
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
    const ten = '203.0.113.10/32';
    const scheduled = '203.0.113.64/26';
    const rowsTo = (to: string) =>
      countRows(server.database.db.knex, 'routes', { destination: to });

    it('when PUT /routes/ adds 203.0.113.10 via GW, then 201, GET shows it active as a /32, and the kernel has it', async () => {
      expect(await managedRoutes(fleet.lab)).toEqual([]);
      const res = await client.put({ to: '203.0.113.10', via: GW() });
      expectMessage(res, 201, MSG.added);

      expect(await managedRoutes(fleet.lab)).toEqual([{ to: ten, gateway: GW(), dev: 'eth0' }]);
      const list = await client.list();
      expect(list.status, list.text).toBe(200);
      expect(list.body.database_routes).toEqual([
        {
          to: ten,
          via: GW(),
          dev: null,
          create_at: expect.any(String),
          delete_at: null,
          active: true,
          status: 'active',
        },
      ]);
      // system_routes are the kernel's lines, `ip route` style: host routes without /32.
      expect(list.body.system_routes).toEqual(
        expect.arrayContaining([expect.stringMatching(`^203\\.0\\.113\\.10 via ${GW()} dev eth0`)]),
      );
    });

    it('when the same PUT comes again, then 200 "already exists" and still one row', async () => {
      const res = await client.put({ to: '203.0.113.10', via: GW() });
      expectMessage(res, 200, MSG.exists(ten));
      expect(await rowsTo(ten)).toBe(1);
      expect(await managedRoutes(fleet.lab)).toEqual([{ to: ten, gateway: GW(), dev: 'eth0' }]);
    });

    it('when a route is scheduled with +05:30 timestamps, then it is pending, active after create_at, and expired after delete_at', async () => {
      const createAt = new Date(Date.now() + CREATE_IN_MS);
      const deleteAt = new Date(Date.now() + DELETE_IN_MS);
      const res = await client.put({
        to: scheduled,
        dev: 'eth0',
        create_at: atOffset(createAt, '+05:30'),
        delete_at: atOffset(deleteAt, '+05:30'),
      });
      expectMessage(res, 201, MSG.added);

      // Stored pending at the instants the offsets denote; nothing in the kernel yet.
      const [row] = await server.database.db.knex('routes').where({ destination: scheduled });
      expect(row).toMatchObject({ status: 'pending', create_at: createAt, delete_at: deleteAt });
      expect(await managedRoutes(fleet.lab)).toEqual([{ to: ten, gateway: GW(), dev: 'eth0' }]);
      expect(await listed(client, scheduled)).toEqual({
        to: scheduled,
        via: null,
        dev: 'eth0',
        create_at: createAt.toISOString(),
        delete_at: deleteAt.toISOString(),
        active: false,
        status: 'pending',
      });

      // Applied at create_at (an ignored offset would put it 5.5 hours away), never before.
      await kernelHas(fleet.lab, 'h1', { to: scheduled });
      expect(Date.now()).toBeGreaterThanOrEqual(createAt.getTime());
      // By now it may already have expired on a busy machine, so the trail, not the listing,
      // shows it went active (once, and not before create_at).
      const activations = await server.database.db
        .knex('route_events')
        .where({ route_id: row.id, from_status: 'pending', to_status: 'active' });
      expect(activations).toHaveLength(1);
      expect(new Date(activations[0].at).getTime()).toBeGreaterThanOrEqual(createAt.getTime());

      // At delete_at: out of the kernel and of database_routes, into the deleted list.
      await kernelLacks(fleet.lab, 'h1', { to: scheduled });
      expect(await managedRoutes(fleet.lab)).toEqual([{ to: ten, gateway: GW(), dev: 'eth0' }]);
      expect(await listed(client, scheduled)).toBeUndefined();
      const gone = await poll('the expired route in /routes/deleted', async () => {
        const found = await listedDeleted(client, scheduled);
        return found.length > 0 ? found : undefined;
      });
      expect(gone).toEqual([
        {
          id: row.id,
          to: scheduled,
          via: null,
          dev: 'eth0',
          create_at: createAt.toISOString(),
          delete_at: deleteAt.toISOString(),
          removed_at: expect.any(String),
          status: 'expired',
        },
      ]);
    });

    it('when 203.0.113.10/32 is paused, then 200 and it is gone from the kernel but still stored', async () => {
      expectMessage(await client.pause({ to: ten }), 200, MSG.paused(ten));
      await kernelLacks(fleet.lab, 'h1', { to: ten });
      expect(await managedRoutes(fleet.lab)).toEqual([]);
      expect(await listed(client, ten)).toMatchObject({ active: false, status: 'paused' });
    });

    it('when it is activated, then 200 and it is back in the kernel', async () => {
      expectMessage(await client.activate({ to: ten }), 200, MSG.activated(ten));
      await kernelHas(fleet.lab, 'h1', { to: ten });
      expect(await managedRoutes(fleet.lab)).toEqual([{ to: ten, gateway: GW(), dev: 'eth0' }]);
      expect(await listed(client, ten)).toMatchObject({ active: true, status: 'active' });
    });

    it('when DELETE /routes/ names 203.0.113.10, then 200, out of the kernel, listed in /routes/deleted as deleted', async () => {
      expectMessage(await client.remove({ to: '203.0.113.10' }), 200, MSG.deleted);
      await kernelLacks(fleet.lab, 'h1', { to: ten });
      expect(await managedRoutes(fleet.lab)).toEqual([]);
      expect(await listed(client, ten)).toBeUndefined();
      expect(await listedDeleted(client, ten)).toEqual([
        expect.objectContaining({ to: ten, via: GW(), dev: null, status: 'deleted' }),
      ]);
    });

    it('when DELETE /routes/ names 203.0.113.99, which was never stored, then 404 with the contract detail', async () => {
      const res = await client.remove({ to: '203.0.113.99' });
      expectDetail(res, 404, MSG.deleteNotFound('203.0.113.99/32'));
      expect(await managedRoutes(fleet.lab)).toEqual([]);
      const list = await client.list();
      expect(list.body.database_routes).toEqual([]);
    });
  },
);
