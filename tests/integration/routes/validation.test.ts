import { describe, expect, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import { expectProblem } from '../../helpers/problem.ts';
import { countRows, findRoute, ownedRoutes } from '../../helpers/routes.ts';
import { useTestServer } from '../../helpers/server.ts';

// Every rejection is a 400 problem naming the field, and a rejected request records nothing.
const T = 60_000;

describe('route requests that cannot be applied, on a lab of 1 host', { timeout: T }, () => {
  const fleet = useLab(1);
  const server = useTestServer(() => ({ INVENTORY: fleet.lab.inventoryPath }), T);

  const gw = () => fleet.lab.gatewayV4;
  const post = (body: unknown) => server.request('POST', '/v1/routes', { body });
  const rowCount = (table: 'routes' | 'route_events') => countRows(server.database.db.knex, table);
  const hour = (h: number) => new Date(Date.now() + h * 3_600_000).toISOString();

  it('when the prefix has host bits set, then 400 on /body/to says so and names the network', async () => {
    const res = await post({ host: 'h1', to: '203.0.113.7/24', via: gw() });
    expectProblem(res, 400, 'validation', { field: '/body/to', detail: /host bits set/ });
    expect(res.body.detail).toContain('203.0.113.0/24');
    const v6 = await post({ host: 'h1', to: '2001:db8:f000::1/48', dev: 'eth0' });
    expectProblem(v6, 400, 'validation', { field: '/body/to', detail: /host bits set/ });
  });

  it('when `to` is not a prefix, then 400 on /body/to', async () => {
    expectProblem(
      await post({ host: 'h1', to: '203.0.113.0/33', dev: 'eth0' }),
      400,
      'validation',
      {
        field: '/body/to',
      },
    );
    expectProblem(await post({ host: 'h1', to: 'example.com', dev: 'eth0' }), 400, 'validation', {
      field: '/body/to',
    });
  });

  it('when via is in the other family, then 400 on /body/via', async () => {
    const v4 = await post({ host: 'h1', to: '203.0.113.0/24', via: fleet.lab.gatewayV6 });
    expectProblem(v4, 400, 'validation', { field: '/body/via', detail: /IPv6/ });
    const v6 = await post({ host: 'h1', to: '2001:db8:f000::/48', via: gw() });
    expectProblem(v6, 400, 'validation', { field: '/body/via', detail: /IPv4/ });
  });

  it('when neither via nor dev is given, then 400 names via', async () => {
    const res = await post({ host: 'h1', to: '203.0.113.0/24' });
    expectProblem(res, 400, 'validation', { field: '/body/via', detail: /via or dev/ });
  });

  it('when create_at is not before delete_at, then 400 on /body/create_at', async () => {
    const res = await post({
      host: 'h1',
      to: '203.0.113.0/24',
      via: gw(),
      create_at: hour(2),
      delete_at: hour(1),
    });
    expectProblem(res, 400, 'validation', { field: '/body/create_at', detail: /before delete_at/ });
  });

  it('when delete_at has passed, then 400 on /body/delete_at', async () => {
    const res = await post({
      host: 'h1',
      to: '203.0.113.0/24',
      via: gw(),
      delete_at: new Date(Date.now() - 60_000).toISOString(),
    });
    expectProblem(res, 400, 'validation', { field: '/body/delete_at', detail: /future/ });
  });

  it('when the host is not in the inventory, then 400 on /body/host', async () => {
    const res = await post({ host: 'nosuchhost', to: '203.0.113.0/24', via: gw() });
    expectProblem(res, 400, 'validation', { field: '/body/host', detail: /nosuchhost/ });
  });

  it('when the body has a field the contract does not know, then 400 names it', async () => {
    const res = await post({ host: 'h1', to: '203.0.113.0/24', via: gw(), gateway: gw() });
    expect(res.status, res.text).toBe(400);
    expect(res.body.errors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ field: expect.stringMatching(/^\/body/) }),
      ]),
    );
    expect(res.text).toContain('gateway');
  });

  it('when one item of a batch is bad, then the whole batch is rejected, naming its index, and nothing is recorded', async () => {
    const before = { routes: await rowCount('routes'), events: await rowCount('route_events') };
    const res = await post([
      { host: 'h1', to: '203.0.113.0/26', via: gw() },
      { host: 'h1', to: '203.0.113.64/26', dev: 'eth0' },
      { host: 'h1', to: '203.0.113.129/25', via: gw() },
    ]);
    expectProblem(res, 400, 'validation', { field: '/body/2/to', detail: /host bits/ });
    const late = await post([
      { host: 'h1', to: '203.0.113.0/26', via: gw() },
      { host: 'nosuchhost', to: '203.0.113.64/26', dev: 'eth0' },
    ]);
    expectProblem(late, 400, 'validation', { field: '/body/1/host' });
    expect({ routes: await rowCount('routes'), events: await rowCount('route_events') }).toEqual(
      before,
    );
    expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), { to: '203.0.113.0/26' })).toBeUndefined();
  });

  it('when every rejection above has been answered, then no route row exists', async () => {
    expect(await rowCount('routes')).toBe(0);
    expect(await rowCount('route_events')).toBe(0);
  });

  it('when `to` is a bare address, then it becomes a /32 or /128 host route, in the kernel too', async () => {
    const res = await post([
      { host: 'h1', to: '203.0.113.9', via: gw() },
      { host: 'h1', to: '2001:db8:f000::9', dev: 'eth0' },
    ]);
    expect(res.status, res.text).toBe(201);
    expect(res.body.items.map((i: { route: { to: string } }) => i.route.to)).toEqual([
      '203.0.113.9/32',
      '2001:db8:f000::9/128',
    ]);
    const kernel = await ownedRoutes(fleet.lab, 'h1');
    expect(findRoute(kernel, { to: '203.0.113.9/32' })).toMatchObject({ gateway: gw() });
    expect(findRoute(kernel, { to: '2001:db8:f000::9/128' })).toMatchObject({
      dev: 'eth0',
      metric: 1024,
    });
    // The same address spelled as a prefix is the same route.
    const again = await post({ host: 'h1', to: '203.0.113.9/32', via: gw() });
    expect(again.status, again.text).toBe(200);
    expect(again.body.id).toBe(res.body.items[0].route.id);
  });
});
