import { describe, expect, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import { expectProblem } from '../../helpers/problem.ts';
import {
  eventTrail,
  findRoute,
  inMs,
  kernelHas,
  kernelLacks,
  ownedRoutes,
  poll,
  routeRow,
  createRoute,
} from '../../helpers/routes.ts';
import { useTestServer } from '../../helpers/server.ts';

// Changing a route's schedule (PATCH, PUT) moves its transitions; POST never changes one.
const T = 90_000;
const HOUR = 3_600_000;

describe('rescheduling routes, on a lab of 2 hosts', { timeout: T }, () => {
  const fleet = useLab(2);
  const server = useTestServer(() => ({ INVENTORY: fleet.lab.inventoryPath }), T);

  const h2v4 = () => fleet.lab.hosts[1]!.ipv4;
  const knex = () => server.database.db.knex;
  const h1Has = async (to: string) => findRoute(await ownedRoutes(fleet.lab, 'h1'), { to });

  async function createPending(to: string, extra: Record<string, unknown> = {}) {
    const res = await server.request('POST', '/v1/routes', {
      body: { host: 'h1', to, dev: 'eth0', create_at: inMs(HOUR), ...extra },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.status).toBe('pending');
    return res.body.id as string;
  }

  it('when a pending route is PUT with a new gateway and no create_at, then it becomes active and reaches the kernel', async () => {
    const to = '203.0.113.0/28';
    const id = await createPending(to);

    const moved = await server.request('PUT', '/v1/routes', {
      body: { host: 'h1', to, via: h2v4() },
    });
    expect(moved.status, moved.text).toBe(200);
    expect(moved.body).toMatchObject({
      id,
      via: h2v4(),
      status: 'active',
      create_at: null,
      sync: { state: 'in_sync' },
    });
    // The PUT answered after the run that carried it: the kernel already has it.
    expect(await h1Has(to)).toMatchObject({ gateway: h2v4() });
    expect(await routeRow(knex(), id)).toMatchObject({
      status: 'active',
      create_at: null,
      via: h2v4(),
    });
    expect(await eventTrail(knex(), id)).toEqual([
      ['create', null, 'pending'],
      ['update', 'pending', 'active'],
    ]);
  });

  it('when a pending route is PUT with the same forwarding and no create_at, then it becomes active too', async () => {
    const to = '203.0.113.16/28';
    const id = await createPending(to);
    const res = await server.request('PUT', '/v1/routes', {
      body: { host: 'h1', to, dev: 'eth0' },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id, status: 'active', create_at: null });
    expect(await h1Has(to)).toMatchObject({ dev: 'eth0', gateway: null });
  });

  it('when a paused route is PUT with a new gateway, then it moves but stays paused and out of the kernel', async () => {
    const to = '203.0.113.32/28';
    const { id } = await createRoute(server, { host: 'h1', to, dev: 'eth0' });
    const paused = await server.request('POST', `/v1/routes/${id}/pause`);
    expect(paused.status, paused.text).toBe(200);

    const moved = await server.request('PUT', '/v1/routes', {
      body: { host: 'h1', to, via: h2v4() },
    });
    expect(moved.status, moved.text).toBe(200);
    expect(moved.body).toMatchObject({ id, via: h2v4(), status: 'paused' });
    expect(await h1Has(to)).toBeUndefined();
    expect(await routeRow(knex(), id)).toMatchObject({ status: 'paused', via: h2v4() });
  });

  it('when a pending route is PATCHed to create_at seconds ahead, then it reaches the kernel at that time', async () => {
    const to = '203.0.113.48/28';
    const id = await createPending(to);
    // Seconds ahead, with room for the PATCH's own answer on two busy cores.
    const createAt = new Date(Date.now() + 6_000);

    const res = await server.request('PATCH', `/v1/routes/${id}`, {
      body: { create_at: createAt.toISOString() },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id, status: 'pending', create_at: createAt.toISOString() });
    expect(await h1Has(to)).toBeUndefined();

    await kernelHas(fleet.lab, 'h1', { to });
    // The scheduler fired it at the new time, not the hour-ahead one it was created with.
    expect(Date.now()).toBeGreaterThanOrEqual(createAt.getTime());
    expect(Date.now()).toBeLessThan(createAt.getTime() + HOUR / 2);
    const active = await poll('route active and in sync', async () => {
      const r = await server.request('GET', `/v1/routes/${id}`, { token: 'viewer' });
      return r.body.status === 'active' && r.body.sync.state === 'in_sync' ? r.body : undefined;
    });
    expect(active.create_at).toBe(createAt.toISOString());
    expect(await eventTrail(knex(), id)).toEqual([
      ['create', null, 'pending'],
      ['update', 'pending', 'pending'],
      ['activate', 'pending', 'active'],
    ]);
  });

  it('when an active route is PATCHed to delete_at seconds ahead, then it leaves the kernel and history lists it expired', async () => {
    const to = '203.0.113.64/28';
    const { id } = await createRoute(server, {
      host: 'h1',
      to,
      via: h2v4(),
      delete_at: inMs(HOUR),
    });
    expect(await h1Has(to)).toMatchObject({ gateway: h2v4() });

    const deleteAt = inMs(6_000);
    const res = await server.request('PATCH', `/v1/routes/${id}`, {
      token: 'operator',
      body: { delete_at: deleteAt },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id, status: 'active', delete_at: deleteAt });

    await kernelLacks(fleet.lab, 'h1', { to });
    const expired = await poll('route in history', async () => {
      const h = await server.request('GET', '/v1/routes/history?status=expired', {
        token: 'viewer',
      });
      return h.body.items.find((r: { id: string }) => r.id === id);
    });
    expect(expired).toMatchObject({
      status: 'expired',
      removed_reason: 'expired',
      removed_by: 'scheduler',
      delete_at: deleteAt,
    });
    expect(new Date(expired.removed_at).getTime()).toBeGreaterThanOrEqual(Date.parse(deleteAt));
    expect(await eventTrail(knex(), id)).toEqual([
      ['create', null, 'active'],
      ['update', 'active', 'active'],
      ['expire', 'active', 'expired'],
    ]);
  });

  it('when an identical route is POSTed with another schedule, then 409 points at it and names PATCH and PUT, and nothing changes', async () => {
    const to = '203.0.113.80/28';
    const createAt = inMs(HOUR);
    const deleteAt = inMs(2 * HOUR);
    const body = { host: 'h1', to, dev: 'eth0', create_at: createAt, delete_at: deleteAt };
    const created = await server.request('POST', '/v1/routes', { body });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as string;

    const now = await server.request('POST', '/v1/routes', {
      body: { host: 'h1', to, dev: 'eth0' },
    });
    expectProblem(now, 409, 'conflict', { detail: /schedule.*PATCH \/v1\/routes\/.*PUT/ });
    expect(now.body).toMatchObject({ route_id: id, field: '/body/create_at' });

    const later = await server.request('POST', '/v1/routes', {
      body: { ...body, delete_at: inMs(3 * HOUR) },
    });
    expectProblem(later, 409, 'conflict', { detail: /schedule/ });
    expect(later.body).toMatchObject({ route_id: id, field: '/body/delete_at' });

    // In a batch too, and then nothing of the batch is recorded.
    const batch = await server.request('POST', '/v1/routes', {
      body: [
        { host: 'h1', to: '203.0.113.96/28', dev: 'eth0' },
        { host: 'h1', to, dev: 'eth0' },
      ],
    });
    expectProblem(batch, 409, 'conflict', { detail: /schedule/ });
    expect(batch.body).toMatchObject({ route_id: id, field: '/body/1/create_at' });
    expect(await knex()('routes').where({ destination: '203.0.113.96/28' })).toHaveLength(0);

    const row = await routeRow(knex(), id);
    expect(row).toMatchObject({ status: 'pending' });
    expect(row.create_at.toISOString()).toBe(createAt);
    expect(row.delete_at.toISOString()).toBe(deleteAt);
    expect(await eventTrail(knex(), id)).toEqual([['create', null, 'pending']]);

    // The same schedule again is the same route: 200, never a duplicate.
    const same = await server.request('POST', '/v1/routes', { body });
    expect(same.status, same.text).toBe(200);
    expect(same.body.id).toBe(id);

    // PUT is the way to change it on purpose.
    const put = await server.request('PUT', '/v1/routes', {
      body: { ...body, delete_at: inMs(3 * HOUR) },
    });
    expect(put.status, put.text).toBe(200);
    expect(put.body).toMatchObject({ id, status: 'pending' });
    expect(put.body.delete_at).not.toBe(deleteAt);
  });

  it('when one batch names an identity twice with different schedules, then 400 and nothing is recorded', async () => {
    const to = '203.0.113.128/28';
    const res = await server.request('POST', '/v1/routes', {
      body: [
        { host: 'h1', to, dev: 'eth0' },
        { host: 'h1', to, dev: 'eth0', delete_at: inMs(HOUR) },
      ],
    });
    expectProblem(res, 400, 'validation', { field: '/body/1/to', detail: /twice.*schedule/ });
    expect(await knex()('routes').where({ destination: to })).toHaveLength(0);
  });

  it('when an active route is POSTed again with a create_at that has already passed, then it is the same route', async () => {
    const to = '203.0.113.112/28';
    const created = await server.request('POST', '/v1/routes', {
      body: { host: 'h1', to, dev: 'eth0' },
    });
    expect(created.status, created.text).toBe(201);
    const again = await server.request('POST', '/v1/routes', {
      body: { host: 'h1', to, dev: 'eth0', create_at: inMs(-60_000) },
    });
    expect(again.status, again.text).toBe(200);
    expect(again.body).toMatchObject({ id: created.body.id, status: 'active', create_at: null });
  });
});
