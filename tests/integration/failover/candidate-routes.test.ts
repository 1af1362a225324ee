import { describe, expect, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import { expectProblem } from '../../helpers/problem.ts';
import { countRows } from '../../helpers/routes.ts';
import { useTestServer } from '../../helpers/server.ts';

// Candidate gateways as the API takes and shows them, with checks off (FAILOVER_CHECKS=false,
// the test default): what is stored, what reaches the kernel at once, and what is refused.
const T = 90_000;
const TO = '203.0.113.0/24';

describe('routes with candidate gateways, on a lab of 3 hosts', { timeout: T }, () => {
  const fleet = useLab(3);
  const server = useTestServer(
    () => ({ INVENTORY: fleet.lab.inventoryPath, COMPAT_HOST: 'h1' }),
    T,
  );
  const addr = (h: string) => fleet.lab.hosts.find((x) => x.name === h)!.ipv4;
  const post = (body: unknown, query = '') =>
    server.request('POST', `/v1/routes${query}`, { body });
  const kernel = async (to: string) =>
    JSON.parse(await nsExec(fleet.lab, 'h1', ['ip', '-j', 'route', 'show', to])) as {
      gateway?: string;
      nexthops?: { gateway: string }[];
    }[];

  let id = '';

  it('when via is a list, then the route starts on its first candidate with health unknown', async () => {
    const res = await post({ host: 'h1', to: TO, via: [addr('h2'), addr('h3')] });
    expect(res.status).toBe(201);
    id = res.body.id as string;
    expect(res.body).toMatchObject({
      via: [addr('h2'), addr('h3')],
      active_via: addr('h2'),
      mode: 'failover',
      preempt: false,
      hold_down_s: 10,
      health_check: [{ type: 'icmp', interval_s: 2, timeout_s: 1, rise: 2, fall: 2 }],
      degraded: false,
      last_switch: null,
      sync: { state: 'in_sync' },
    });
    expect(res.body.candidates).toEqual([
      { via: addr('h2'), health: 'unknown', since: expect.any(String), active: true },
      { via: addr('h3'), health: 'unknown', since: expect.any(String), active: false },
    ]);
    expect((await kernel(TO)).map((r) => r.gateway)).toEqual([addr('h2')]);
  });

  it('when the same candidates are posted again, then the route is returned as it is', async () => {
    const res = await post({ host: 'h1', to: TO, via: [addr('h2'), addr('h3')] });
    expect(res.status).toBe(200);
    const other = await post({ host: 'h1', to: TO, via: [addr('h3'), addr('h2')] });
    expectProblem(other, 409, 'conflict');
    expect(other.body).toMatchObject({ field: '/body/to', route_id: id });
  });

  it('when a PATCH changes the policy only, then the route keeps the gateway it uses', async () => {
    const res = await server.request('PATCH', `/v1/routes/${id}`, {
      body: { preempt: true, hold_down_s: 30, health_check: { type: 'tcp', port: 22 } },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      preempt: true,
      hold_down_s: 30,
      active_via: addr('h2'),
      health_check: [{ type: 'tcp', port: 22 }],
    });
  });

  it('when the route-manager surface reads it, then via is the gateway in use; a PUT or PATCH on it is a 422', async () => {
    const state = await server.request('GET', '/routes/');
    const mine = (
      state.body as { database_routes: { to: string; via: string }[] }
    ).database_routes.find((r) => r.to === TO);
    expect(mine?.via).toBe(addr('h2'));
    const put = await server.request('PUT', '/routes/', { body: { to: TO, via: addr('h3') } });
    expect(put.status).toBe(422);
    expect(put.body.detail).toMatch(/candidate gateways/);
    const patch = await server.request('PATCH', '/routes/', { body: { to: TO, via: addr('h3') } });
    expect(patch.status).toBe(422);
    // Neither touched the route: its candidates, the gateway in use and the kernel are as before.
    const after = await server.request('GET', `/v1/routes/${id}`);
    expect(after.body).toMatchObject({ via: [addr('h2'), addr('h3')], active_via: addr('h2') });
    expect((await kernel(TO)).map((r) => r.gateway)).toEqual([addr('h2')]);
  });

  it('when mode is ecmp, then one multipath route over every candidate reaches the kernel', async () => {
    const to = '203.0.113.64/26';
    const res = await post({ host: 'h1', to, via: [addr('h2'), addr('h3')], mode: 'ecmp' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ active_via: [addr('h2'), addr('h3')], mode: 'ecmp' });
    const [route] = await kernel(to);
    expect(route?.nexthops?.map((n) => n.gateway).sort()).toEqual([addr('h2'), addr('h3')].sort());
  });

  describe('refused, recording nothing', () => {
    const refused = async (body: Record<string, unknown>, field: string, detail?: RegExp) => {
      const before = await countRows(server.database.db.knex, 'routes');
      const res = await post({ host: 'h1', to: '203.0.113.128/25', ...body });
      expectProblem(res, 400, 'validation', { field, ...(detail ? { detail } : {}) });
      expect(await countRows(server.database.db.knex, 'routes')).toBe(before);
    };

    it('when a candidate appears twice, then 400 names its index', () =>
      refused({ via: [addr('h2'), addr('h2')] }, '/body/via/1', /already candidate 0/));

    it('when a candidate is in the other family, then 400 names it', () =>
      refused({ via: [addr('h2'), '2001:db8::1'] }, '/body/via/1', /IPv6/));

    it('when a tcp check has no port, then 400 names the check', () =>
      refused(
        { via: [addr('h2'), addr('h3')], health_check: { type: 'tcp' } },
        '/body/health_check/port',
      ));

    it('when timeout_s exceeds interval_s, then 400 names timeout_s', () =>
      refused(
        {
          via: [addr('h2'), addr('h3')],
          health_check: [{ type: 'icmp', interval_s: 1, timeout_s: 2 }],
        },
        '/body/health_check/0/timeout_s',
      ));

    it('when a policy field comes with one via, then 400 says it needs candidates', () =>
      refused({ via: addr('h2'), preempt: true }, '/body/preempt', /list of candidate gateways/));

    it('when a candidate is loopback or link-local, then 400: no probe may reach the checking host’s own services', async () => {
      await refused({ via: [addr('h2'), '127.0.0.1'] }, '/body/via/1', /loopback/);
      await refused({ via: ['169.254.169.254', addr('h2')] }, '/body/via/0', /link-local/);
    });

    it('when an IPv6 link-local candidate comes without dev, then 400 asks for the device', async () => {
      const before = await countRows(server.database.db.knex, 'routes');
      const res = await post({ host: 'h1', to: '2001:db8:f000::/48', via: ['fe80::1', 'fe80::2'] });
      expectProblem(res, 400, 'validation', {
        field: '/body/via/0',
        detail: /name the route’s dev|dev/,
      });
      expect(await countRows(server.database.db.knex, 'routes')).toBe(before);
    });

    it('when the check type is unknown, then 400 from the contract, naming the field', async () => {
      const before = await countRows(server.database.db.knex, 'routes');
      const res = await post({
        host: 'h1',
        to: '203.0.113.128/25',
        via: [addr('h2'), addr('h3')],
        health_check: { type: 'http' },
      });
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body.errors)).toContain('/body/health_check');
      expect(await countRows(server.database.db.knex, 'routes')).toBe(before);
    });
  });
});
