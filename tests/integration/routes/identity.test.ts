import { describe, expect, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import { expectProblem } from '../../helpers/problem.ts';
import { findRoute, ownedRoutes } from '../../helpers/routes.ts';
import { useTestServer } from '../../helpers/server.ts';

// A route is (host, table, to, metric): never duplicated, moved only on purpose.
const T = 90_000;

interface Item {
  outcome: string;
  route: { id: string; host: string; to: string; sync: { state: string } };
}

describe('route identity and idempotency, on a lab of 2 hosts', { timeout: T }, () => {
  const fleet = useLab(2);
  const server = useTestServer(() => ({ INVENTORY: fleet.lab.inventoryPath }), T);

  const h1 = () => fleet.lab.hosts[0]!;
  const h2 = () => fleet.lab.hosts[1]!;
  const rows = (destination: string) =>
    server.database.db.knex('routes').where({ destination }).select('id', 'host', 'via', 'status');

  it('when the same route is posted twice, then 201 then 200 with the same id, and one row', async () => {
    const body = { host: 'h1', to: '203.0.113.0/27', via: h2().ipv4, comment: 'first' };
    const first = await server.request('POST', '/v1/routes', { body });
    expect(first.status, first.text).toBe(201);
    const second = await server.request('POST', '/v1/routes', { body, token: 'operator' });
    expect(second.status, second.text).toBe(200);
    expect(second.body.id).toBe(first.body.id);
    expect(second.body).toMatchObject({ created_by: 'admin', sync: { state: 'in_sync' } });
    expect(await rows('203.0.113.0/27')).toHaveLength(1);
    const events = await server.request('GET', `/v1/routes/${first.body.id}/events`);
    expect(events.body.items).toHaveLength(1);
  });

  it('when the same identity is posted with another gateway, then 409 points at the existing route', async () => {
    const res = await server.request('POST', '/v1/routes', {
      body: { host: 'h1', to: '203.0.113.0/27', via: h1().ipv4 },
    });
    expectProblem(res, 409, 'conflict', { detail: /PUT/ });
    const [existing] = await rows('203.0.113.0/27');
    expect(res.body.route_id).toBe(existing!.id);
    expect(existing!.via).toBe(h2().ipv4);
  });

  it('when the route is PUT with a new gateway, then it moves in place and the kernel follows', async () => {
    // h1 routes via itself is not useful, so move h2's route instead: first create it there.
    const to = '203.0.113.32/27';
    const created = await server.request('POST', '/v1/routes', {
      body: { host: 'h2', to, via: h1().ipv4 },
    });
    expect(created.status, created.text).toBe(201);
    expect(findRoute(await ownedRoutes(fleet.lab, 'h2'), { to })).toMatchObject({
      gateway: h1().ipv4,
    });

    const gateway = fleet.lab.gatewayV4;
    const moved = await server.request('PUT', '/v1/routes', {
      token: 'operator',
      body: { host: 'h2', to, via: gateway },
    });
    expect(moved.status, moved.text).toBe(200);
    expect(moved.body).toMatchObject({ id: created.body.id, via: gateway, status: 'active' });
    expect(moved.body.sync.state).toBe('in_sync');
    const kernel = (await ownedRoutes(fleet.lab, 'h2')).filter((r) => r.to === to);
    expect(kernel).toEqual([expect.objectContaining({ gateway, metric: 0, table: 254 })]);
    expect(await rows(to)).toEqual([
      { id: created.body.id, host: 'h2', via: gateway, status: 'active' },
    ]);
    const events = await server.request('GET', `/v1/routes/${created.body.id}/events`);
    expect(events.body.items.map((e: { action: string; actor: string }) => e.action)).toEqual([
      'create',
      'update',
    ]);
    expect(events.body.items[1]).toMatchObject({ actor: 'operator', from: 'active', to: 'active' });

    // PUT of what is already there changes nothing.
    const same = await server.request('PUT', '/v1/routes', {
      body: { host: 'h2', to, via: gateway },
    });
    expect(same.status, same.text).toBe(200);
    expect(same.body.id).toBe(created.body.id);
  });

  it('when a batch names the group `lab`, then it expands to one route per host, each in its kernel', async () => {
    const res = await server.request('POST', '/v1/routes', {
      body: [
        { host: 'lab', to: '2001:db8:f000::/48', dev: 'eth0' },
        { host: 'h1', to: '203.0.113.64/27', via: h2().ipv4 },
        // identical to the first test's route: reported as existing, not duplicated
        { host: 'h1', to: '203.0.113.0/27', via: h2().ipv4 },
      ],
    });
    expect(res.status, res.text).toBe(201);
    const items = res.body.items as Item[];
    expect(items.map((i) => [i.outcome, i.route.host, i.route.to])).toEqual([
      ['created', 'h1', '2001:db8:f000::/48'],
      ['created', 'h2', '2001:db8:f000::/48'],
      ['created', 'h1', '203.0.113.64/27'],
      ['existing', 'h1', '203.0.113.0/27'],
    ]);
    expect(items.every((i) => i.route.sync.state === 'in_sync')).toBe(true);
    expect(res.body.counts).toEqual({ in_sync: 4 });
    for (const host of ['h1', 'h2']) {
      expect(
        findRoute(await ownedRoutes(fleet.lab, host), { to: '2001:db8:f000::/48', metric: 1024 }),
      ).toMatchObject({ dev: 'eth0' });
    }
    expect(await rows('2001:db8:f000::/48')).toHaveLength(2);
    expect(await rows('203.0.113.0/27')).toHaveLength(1);
  });

  it('when one batch repeats an identity identically, then it is one route; with other forwarding, 400', async () => {
    const to = '203.0.113.96/27';
    const twice = await server.request('POST', '/v1/routes', {
      body: [
        { host: 'h1', to, via: h2().ipv4 },
        { host: 'h1', to, via: h2().ipv4 },
      ],
    });
    expect(twice.status, twice.text).toBe(201);
    const [a, b] = twice.body.items as Item[];
    expect(a!.route.id).toBe(b!.route.id);
    expect(await rows(to)).toHaveLength(1);

    const clash = await server.request('POST', '/v1/routes', {
      body: [
        { host: 'h2', to: '203.0.113.128/27', via: h1().ipv4 },
        { host: 'lab', to: '203.0.113.128/27', dev: 'eth0' },
      ],
    });
    expectProblem(clash, 400, 'validation', { field: '/body/1/to', detail: /twice/ });
    expect(await rows('203.0.113.128/27')).toHaveLength(0);
  });

  it('when the same destination has another metric or table, then it is another route', async () => {
    const res = await server.request('POST', '/v1/routes', {
      body: [
        { host: 'h1', to: '203.0.113.0/27', via: h2().ipv4, metric: 50 },
        { host: 'h1', to: '203.0.113.0/27', via: h2().ipv4, table: 100 },
      ],
    });
    expect(res.status, res.text).toBe(201);
    expect((res.body.items as Item[]).map((i) => i.outcome)).toEqual(['created', 'created']);
    expect(await rows('203.0.113.0/27')).toHaveLength(3);
    const kernel = (await ownedRoutes(fleet.lab, 'h1')).filter((r) => r.to === '203.0.113.0/27');
    expect(kernel.map((r) => [r.table, r.metric]).sort()).toEqual([
      [100, 0],
      [254, 0],
      [254, 50],
    ]);
  });
});
