import { afterAll, describe, expect, it } from 'vitest';
import { startSshd, stopSshd } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import {
  countRows,
  FAST_RETRIES,
  findRoute,
  kernelHas,
  ownedRoutes,
  poll,
} from '../../helpers/routes.ts';
import { useTestServer } from '../../helpers/server.ts';

// A host that cannot be reached: the route is recorded as failed, then converges on its own.
const T = 120_000;

interface RouteBody {
  id: string;
  sync: { state: string; error: string | null; retry_at: string | null };
}

describe('routes for a host whose sshd is down, on a lab of 2 hosts', { timeout: T }, () => {
  const fleet = useLab(2);
  const server = useTestServer(() => ({ INVENTORY: fleet.lab.inventoryPath, ...FAST_RETRIES }), T);

  afterAll(async () => {
    await startSshd(fleet.lab, 'h1');
    await startSshd(fleet.lab, 'h2');
  }, T);

  it('when sshd is stopped, then the create is a 502 naming the route, the host and the error; when sshd is back, then it converges unasked', async () => {
    const key = { to: '203.0.113.80/28' };
    await stopSshd(fleet.lab, 'h1');

    const res = await server.request('POST', '/v1/routes', {
      body: { host: 'h1', to: key.to, dev: 'eth0' },
    });
    expect(res.status, res.text).toBe(502);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({
      type: 'https://routeplane.dev/problems/apply-failed',
      status: 502,
      host: 'h1',
      route_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      run_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
    expect(res.body.detail).toMatch(/\S/);
    const id = res.body.route_id as string;

    // Recorded, not lost: active, failed with the host's error and a retry time.
    const [row] = await server.database.db.knex('routes').where({ id });
    expect(row).toMatchObject({ status: 'active', sync_state: 'failed', host: 'h1' });
    expect(row.sync_error).toBe(res.body.detail);
    expect(row.sync_retry_at).toBeInstanceOf(Date);
    const got = await server.request('GET', `/v1/routes/${id}`, { token: 'viewer' });
    expect(got.body.sync).toMatchObject({ state: 'failed', error: res.body.detail });
    expect(got.body.sync.retry_at).not.toBeNull();

    // A batch in which every item failed is a 502 too.
    const batch = await server.request('POST', '/v1/routes', {
      body: [
        { host: 'h1', to: '203.0.113.96/28', dev: 'eth0' },
        { host: 'h1', to: '2001:db8:f00f::/48', dev: 'eth0' },
      ],
    });
    expect(batch.status, batch.text).toBe(502);
    expect(batch.body).toMatchObject({ host: 'h1', detail: expect.stringMatching(/every item/) });
    expect(await countRows(server.database.db.knex, 'routes')).toBe(3);

    await startSshd(fleet.lab, 'h1');
    await kernelHas(fleet.lab, 'h1', key, 60_000);
    await kernelHas(fleet.lab, 'h1', { to: '2001:db8:f00f::/48', metric: 1024 }, 60_000);
    const converged = await poll(
      'every route in sync',
      async () => {
        const list = await server.request('GET', '/v1/routes?host=h1', { token: 'viewer' });
        const items = list.body.items as { sync: { state: string } }[];
        return items.length === 3 && items.every((r) => r.sync.state === 'in_sync')
          ? items
          : undefined;
      },
      60_000,
    );
    expect(converged.map((r) => r.sync)).toEqual(
      Array(3).fill(expect.objectContaining({ error: null, retry_at: null })),
    );
    // Converging is the reconciler's doing: no request asked again.
    const events = await server.database.db.knex('route_events').where({ route_id: id });
    expect(events.map((e) => e.action)).toEqual(['create']);
  });

  it('when a batch spans a live host and one whose sshd is stopped, then 201 with each item in sync or failed with the connection error', async () => {
    await stopSshd(fleet.lab, 'h2');
    const live = { to: '203.0.113.160/28' };
    const down = { to: '203.0.113.176/28' };

    const res = await server.request('POST', '/v1/routes', {
      body: [
        { host: 'h1', to: live.to, dev: 'eth0' },
        { host: 'h2', to: down.to, dev: 'eth0' },
      ],
    });
    expect(res.status, res.text).toBe(201);
    const [ok, failed] = res.body.items as { outcome: string; route: RouteBody }[];
    expect(ok).toMatchObject({
      outcome: 'created',
      route: { host: 'h1', to: live.to, sync: { state: 'in_sync', error: null } },
    });
    expect(failed).toMatchObject({
      outcome: 'created',
      route: { host: 'h2', to: down.to, status: 'active', sync: { state: 'failed' } },
    });
    // The reason names the connection that failed, not just "failed": ssh's own words, or
    // Ansible's when ssh exited before it had written the module to ssh's stdin (a race in
    // Ansible's pipelining that ends as a broken pipe).
    const h2 = fleet.lab.hosts[1]!.ipv4.replaceAll('.', '\\.');
    expect(failed!.route.sync.error).toMatch(
      new RegExp(
        `ssh: connect to host ${h2} port 22: Connection refused|` +
          `Data could not be sent to remote host "${h2}"`,
      ),
    );
    expect(failed!.route.sync.retry_at).not.toBeNull();
    expect(res.body.counts).toEqual({ in_sync: 1, failed: 1 });

    expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), live)).toMatchObject({ dev: 'eth0' });
    const [row] = await server.database.db.knex('routes').where({ id: failed!.route.id });
    expect(row).toMatchObject({ sync_state: 'failed', sync_error: failed!.route.sync.error });

    await startSshd(fleet.lab, 'h2');
    await kernelHas(fleet.lab, 'h2', down, 60_000);
  });
});
