import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import { expectProblem } from '../../helpers/problem.ts';
import { findRoute, ownedRoutes } from '../../helpers/routes.ts';
import { CountingRunner, sleep } from '../../helpers/runs.ts';
import { startTestServer, useTestServer, type TestServer } from '../../helpers/server.ts';

// Through the API: routeplane computes each host's management address (the controller's source
// towards it), the module protects it, and force is an admin's call that still cannot cut
// routeplane off from every host a route targets.
const T = 120_000;

describe('the management address, through the API, on a lab of 2 hosts', { timeout: T }, () => {
  const fleet = useLab(2);
  const server = useTestServer(() => ({ INVENTORY: fleet.lab.inventoryPath }), T);
  const mgmt = () => fleet.lab.gatewayV4;
  const h2v4 = () => fleet.lab.hosts[1]!.ipv4;
  const stored = async () => Number((await server.database.db.knex('routes').count())[0]!.count);

  it('when an operator adds a route capturing the address routeplane connects from, then it is a lockout conflict naming that address, and the kernel is untouched', async () => {
    const res = await server.request('POST', '/v1/routes?wait=60', {
      token: 'operator',
      body: { host: 'h1', to: `${mgmt()}/32`, via: h2v4() },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.sync).toMatchObject({
      state: 'conflict',
      conflict: { reason: 'lockout', management_address: mgmt() },
    });
    expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), { to: `${mgmt()}/32` })).toBeUndefined();
    const del = await server.request('DELETE', `/v1/routes/${res.body.id}?wait=60`);
    expect(del.status, del.text).toBe(200);
  });

  describe('with a runner that records what each apply run is given', () => {
    const runner = new CountingRunner();
    let recording: TestServer;
    beforeAll(async () => {
      recording = await startTestServer({ INVENTORY: fleet.lab.inventoryPath }, { runner });
    }, T);
    afterAll(async () => {
      await recording?.close();
    }, T);

    it("when a route is written, then its apply run carries each host's management address: the controller's source towards it", async () => {
      // The stand-in runner reports nothing per host, so the outcome is not the point: the
      // answer comes before it, and what the run was given is checked.
      const res = await recording.request('POST', '/v1/routes?wait=0', {
        token: 'operator',
        body: { host: 'lab', to: '203.0.113.128/25', via: h2v4() },
      });
      expect(res.status, res.text).toBe(202);
      for (let i = 0; i < 50 && runner.specs.length === 0; i++) await sleep(100);
      const applies = runner.specs.filter((s) => s.playbookFile === 'apply.yml');
      expect(applies.length).toBeGreaterThan(0);
      // Each host's address travels in that host's own file, never in a fleet-wide dictionary.
      const given = Object.fromEntries(
        applies.flatMap((s) =>
          Object.entries(s.hostVars ?? {}).map(([h, v]) => [h, v.routeplane_management_address]),
        ),
      );
      expect(given).toEqual({ h1: mgmt(), h2: mgmt() });
      expect(applies[0]!.extravars).not.toHaveProperty('routeplane_management_addresses');
    });
  });

  it('when an operator sends force, then 403 names force and nothing is stored', async () => {
    const before = await stored();
    const res = await server.request('POST', '/v1/routes', {
      token: 'operator',
      body: { host: 'h1', to: '203.0.113.0/24', via: h2v4(), force: true },
    });
    expectProblem(res, 403, 'forbidden');
    expect(res.body.detail).toMatch(/\/body\/force: .*admin role/);
    expect(await stored()).toBe(before);
  });

  it('when an admin forces a route capturing the management address of every host it targets, then 409 names them and nothing is stored', async () => {
    const before = await stored();
    const res = await server.request('POST', '/v1/routes', {
      token: 'admin',
      body: { host: 'lab', to: `${mgmt()}/32`, dev: 'eth0', force: true },
    });
    expectProblem(res, 409, 'conflict');
    expect(res.body.detail).toMatch(/every host it targets: h1 \(.*\), h2 \(.*\)/);
    expect(await stored()).toBe(before);
    expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), { to: `${mgmt()}/32` })).toBeUndefined();
  });

  it('when an admin forces a route that captures nothing, then it is applied as usual', async () => {
    const res = await server.request('POST', '/v1/routes?wait=60', {
      token: 'admin',
      body: { host: 'h1', to: '203.0.113.0/24', via: h2v4(), force: true },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.sync.state).toBe('in_sync');
    expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), { to: '203.0.113.0/24' })).toBeDefined();
  });
});
