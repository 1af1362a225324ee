import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import { expectProblem } from '../../helpers/problem.ts';
import { findRoute, ownedRoutes } from '../../helpers/routes.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

// GET /v1/routes: which routes a filter selects, and pages that add up to the whole list.
const T = 90_000;

const DESTINATIONS = [
  '203.0.113.0/25',
  '203.0.113.0/26',
  '203.0.113.64/26',
  '203.0.113.128/25',
  '203.0.113.7/32',
  '2001:db8:f000::/48',
];

describe('listing routes, on a lab of 1 host', { timeout: T }, () => {
  const fleet = useLab(1);
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath });
    const res = await server.request('POST', '/v1/routes', {
      body: DESTINATIONS.map((to) => ({ host: 'h1', to, dev: 'eth0' })),
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.counts).toEqual({ in_sync: DESTINATIONS.length });
  }, T);

  afterAll(async () => {
    await server?.close();
  }, T);

  async function list(query: Record<string, string>) {
    const qs = new URLSearchParams(query).toString();
    const res = await server.request('GET', `/v1/routes?${qs}`, { token: 'viewer' });
    expect(res.status, res.text).toBe(200);
    return {
      to: (res.body.items as { to: string }[]).map((r) => r.to),
      total: res.body.total as number,
      limit: res.body.limit as number,
      offset: res.body.offset as number,
    };
  }

  it('when contains names an address, then only routes whose destination covers it are listed', async () => {
    expect((await ownedRoutes(fleet.lab, 'h1')).length).toBe(DESTINATIONS.length);
    const in64 = await list({ contains: '203.0.113.70' });
    expect(in64.to.sort()).toEqual(['203.0.113.0/25', '203.0.113.64/26']);
    expect(in64.total).toBe(2);

    const seven = await list({ contains: '203.0.113.7' });
    expect(seven.to.sort()).toEqual(['203.0.113.0/25', '203.0.113.0/26', '203.0.113.7/32']);

    const v6 = await list({ contains: '2001:db8:f000:1::1' });
    expect(v6).toMatchObject({ to: ['2001:db8:f000::/48'], total: 1 });

    expect(await list({ contains: '198.51.100.1' })).toMatchObject({ to: [], total: 0 });
  });

  it('when contains names a prefix, then routes to it and to prefixes around it are listed, not narrower ones', async () => {
    const res = await list({ contains: '203.0.113.0/26' });
    expect(res.to.sort()).toEqual(['203.0.113.0/25', '203.0.113.0/26']);
    // The kernel has each of them: the filter reads the same routes the host was given.
    const kernel = await ownedRoutes(fleet.lab, 'h1');
    for (const to of res.to) expect(findRoute(kernel, { to })).toBeDefined();
  });

  it('when contains and within are typed unencoded, as at a shell, then they work the same', async () => {
    const get = async (qs: string) => {
      const res = await server.request('GET', `/v1/routes?${qs}`, { token: 'viewer' });
      expect(res.status, res.text).toBe(200);
      return (res.body.items as { to: string }[]).map((r) => r.to).sort();
    };
    expect(await get('contains=203.0.113.0/26')).toEqual(['203.0.113.0/25', '203.0.113.0/26']);
    expect(await get('within=2001:db8:f000::/36')).toEqual(
      (await list({ within: '2001:db8:f000::/36' })).to.sort(),
    );
  });

  it('when contains is not an address or prefix, then 400 names the parameter', async () => {
    const res = await server.request('GET', '/v1/routes?contains=203.0.113.300', {
      token: 'viewer',
    });
    expectProblem(res, 400, 'validation', { field: '/query/contains' });
  });

  it('when paged with limit and offset, then the pages are the whole list in order, each with the total', async () => {
    const whole = await list({ host: 'h1' });
    expect(whole).toMatchObject({ total: DESTINATIONS.length, limit: 100, offset: 0 });
    expect([...whole.to].sort()).toEqual([...DESTINATIONS].sort());

    const pages = [await list({ limit: '4' }), await list({ limit: '4', offset: '4' })];
    expect(pages.map((p) => [p.limit, p.offset, p.total, p.to.length])).toEqual([
      [4, 0, DESTINATIONS.length, 4],
      [4, 4, DESTINATIONS.length, 2],
    ]);
    expect(pages.flatMap((p) => p.to)).toEqual(whole.to);

    expect(await list({ limit: '2', offset: '1' })).toMatchObject({
      to: whole.to.slice(1, 3),
      total: DESTINATIONS.length,
    });
    expect(await list({ offset: '6' })).toMatchObject({ to: [], total: DESTINATIONS.length });
    // Filters and pages combine: the total counts the filtered routes, not the page.
    const covering = await list({ contains: '203.0.113.7' });
    expect(await list({ contains: '203.0.113.7', limit: '1', offset: '1' })).toMatchObject({
      to: [covering.to[1]],
      total: 3,
    });
  });

  it('when limit is 0 or over 1000, or offset negative, then 400 names the parameter', async () => {
    for (const q of ['limit=0', 'limit=1001', 'offset=-1']) {
      const res = await server.request('GET', `/v1/routes?${q}`, { token: 'viewer' });
      expect(res.status, `${q}: ${res.text}`).toBe(400);
      expect(res.body.detail).toContain(q.split('=')[0]);
    }
  });
});
