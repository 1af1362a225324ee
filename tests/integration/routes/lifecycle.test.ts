import { describe, expect, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import { expectProblem } from '../../helpers/problem.ts';
import {
  findRoute,
  kernelHas,
  kernelLacks,
  ownedRoutes,
  poll,
  type RouteKey,
} from '../../helpers/routes.ts';
import { useTestServer } from '../../helpers/server.ts';

// Each lifecycle transition, seen in h1's kernel (gateway h2), in the API and in the audit rows.
const T = 90_000;

interface EventBody {
  actor: string;
  action: string;
  from: string | null;
  to: string;
}

describe('a route through its lifecycle, on a lab of 2 hosts', { timeout: T }, () => {
  const fleet = useLab(2);
  const server = useTestServer(() => ({ INVENTORY: fleet.lab.inventoryPath }), T);

  const gateway = () => fleet.lab.hosts[1]!.ipv4;
  const h1Has = async (key: RouteKey) => findRoute(await ownedRoutes(fleet.lab, 'h1'), key);

  async function events(id: string): Promise<EventBody[]> {
    const res = await server.request('GET', `/v1/routes/${id}/events`, { token: 'viewer' });
    expect(res.status, res.text).toBe(200);
    return (res.body.items as EventBody[]).map(({ actor, action, from, to }) => ({
      actor,
      action,
      from,
      to,
    }));
  }

  async function eventRows(id: string) {
    return server.database.db
      .knex('route_events')
      .where({ route_id: id })
      .orderBy('id')
      .select('actor', 'action', 'from_status', 'to_status');
  }

  const getRoute = async (id: string) =>
    (await server.request('GET', `/v1/routes/${id}`, { token: 'viewer' })).body;

  it('when create_at and delete_at are seconds ahead, then the route is absent, then present, then expired', async () => {
    const key = { to: '203.0.113.0/28' };
    const createAt = new Date(Date.now() + 8_000);
    const deleteAt = new Date(createAt.getTime() + 6_000);
    const res = await server.request('POST', '/v1/routes', {
      body: {
        host: 'h1',
        to: key.to,
        via: gateway(),
        create_at: createAt.toISOString(),
        delete_at: deleteAt.toISOString(),
        comment: 'time-boxed',
      },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ host: 'h1', to: key.to, status: 'pending', via: gateway() });
    const id = res.body.id as string;

    // Before create_at: recorded as pending, nothing in the kernel.
    expect(await h1Has(key)).toBeUndefined();
    expect((await getRoute(id)).status).toBe('pending');

    const installed = await kernelHas(fleet.lab, 'h1', key);
    expect(installed).toMatchObject({ gateway: gateway(), dev: 'eth0', metric: 0 });
    // The run that installed it is recorded (the route may already be expiring by now).
    const applied = await poll('the activating run recorded', async () => {
      const r = await getRoute(id);
      return r.sync.run_id ? r : undefined;
    });
    expect(['active', 'expired']).toContain(applied.status);

    // At delete_at: gone from the kernel, and history says expired, by the scheduler.
    await kernelLacks(fleet.lab, 'h1', key);
    const history = await poll('route in history', async () => {
      const h = await server.request('GET', '/v1/routes/history?status=expired', {
        token: 'viewer',
      });
      return h.body.items.find((r: { id: string }) => r.id === id);
    });
    expect(history).toMatchObject({
      status: 'expired',
      removed_reason: 'expired',
      removed_by: 'scheduler',
      comment: 'time-boxed',
    });
    expect(history.removed_at).not.toBeNull();
    const live = await server.request('GET', '/v1/routes?host=h1', { token: 'viewer' });
    expect(live.body.items.map((r: { id: string }) => r.id)).not.toContain(id);

    const trail = [
      { actor: 'admin', action: 'create', from: null, to: 'pending' },
      { actor: 'scheduler', action: 'activate', from: 'pending', to: 'active' },
      { actor: 'scheduler', action: 'expire', from: 'active', to: 'expired' },
    ];
    expect(await events(id)).toEqual(trail);
    expect(await eventRows(id)).toEqual(
      trail.map((e) => ({
        actor: e.actor,
        action: e.action,
        from_status: e.from,
        to_status: e.to,
      })),
    );
  });

  it('when a route is paused, resumed and deleted, then the kernel follows each step and every step is audited', async () => {
    const key = { to: '203.0.113.16/28' };
    const created = await server.request('POST', '/v1/routes', {
      token: 'operator',
      body: { host: 'h1', to: key.to, via: gateway() },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({ status: 'active', created_by: 'operator' });
    expect(created.body.sync).toMatchObject({ state: 'in_sync', error: null, conflict: null });
    const id = created.body.id as string;
    // The write answered after the run that carried it: the kernel already has it.
    expect(await h1Has(key)).toMatchObject({ gateway: gateway() });

    const paused = await server.request('POST', `/v1/routes/${id}/pause`, { token: 'operator' });
    expect(paused.status, paused.text).toBe(200);
    expect(paused.body).toMatchObject({ id, status: 'paused', sync: { state: 'in_sync' } });
    expect(await h1Has(key)).toBeUndefined();

    const pausedAgain = await server.request('POST', `/v1/routes/${id}/pause`);
    expectProblem(pausedAgain, 409, 'conflict', { detail: /paused/ });
    expect(pausedAgain.body).toMatchObject({ route_id: id, current_status: 'paused' });

    const resumed = await server.request('POST', `/v1/routes/${id}/resume`, { token: 'admin' });
    expect(resumed.status, resumed.text).toBe(200);
    expect(resumed.body).toMatchObject({ id, status: 'active', sync: { state: 'in_sync' } });
    expect(await h1Has(key)).toMatchObject({ gateway: gateway() });

    const resumedAgain = await server.request('POST', `/v1/routes/${id}/resume`);
    expectProblem(resumedAgain, 409, 'conflict', { detail: /active/ });
    expect(resumedAgain.body).toMatchObject({ route_id: id, current_status: 'active' });

    const deleted = await server.request('DELETE', `/v1/routes/${id}`, { token: 'operator' });
    expect(deleted.status, deleted.text).toBe(200);
    expect(deleted.body).toMatchObject({
      id,
      status: 'deleted',
      removed_reason: 'deleted',
      removed_by: 'operator',
    });
    expect(await h1Has(key)).toBeUndefined();

    const history = await server.request('GET', '/v1/routes/history?host=h1&status=deleted', {
      token: 'viewer',
    });
    expect(history.body.items.find((r: { id: string }) => r.id === id)).toMatchObject({
      status: 'deleted',
      removed_by: 'operator',
    });

    // A deleted route is history: neither pause nor resume applies, delete is gone.
    const resumeDeleted = await server.request('POST', `/v1/routes/${id}/resume`);
    expectProblem(resumeDeleted, 409, 'conflict');
    expect(resumeDeleted.body.current_status).toBe('deleted');
    const pauseDeleted = await server.request('POST', `/v1/routes/${id}/pause`);
    expect(pauseDeleted.body.current_status).toBe('deleted');
    // (not expectProblem: its stack check takes the detail's "at <ISO time>" for a stack line)
    const again = await server.request('DELETE', `/v1/routes/${id}`);
    expect(again.status, again.text).toBe(404);
    expect(again.body.detail).toMatch(/deleted/);

    const trail = [
      { actor: 'operator', action: 'create', from: null, to: 'active' },
      { actor: 'operator', action: 'pause', from: 'active', to: 'paused' },
      { actor: 'admin', action: 'resume', from: 'paused', to: 'active' },
      { actor: 'operator', action: 'delete', from: 'active', to: 'deleted' },
    ];
    expect(await events(id)).toEqual(trail);
    // Refused transitions leave no trace.
    expect(await eventRows(id)).toHaveLength(trail.length);
    const [row] = await server.database.db.knex('routes').where({ id });
    expect(row).toMatchObject({ status: 'deleted', removed_by: 'operator' });
  });

  it('when a pending route is paused, then 409 names its status; deleting it leaves the kernel alone', async () => {
    const key = { to: '203.0.113.48/28' };
    const res = await server.request('POST', '/v1/routes', {
      body: { host: 'h1', to: key.to, dev: 'eth0', create_at: new Date(Date.now() + 3_600_000) },
    });
    expect(res.status, res.text).toBe(201);
    const id = res.body.id as string;

    const pause = await server.request('POST', `/v1/routes/${id}/pause`);
    expectProblem(pause, 409, 'conflict', { detail: /pending/ });
    expect(pause.body).toMatchObject({ route_id: id, current_status: 'pending' });
    const resume = await server.request('POST', `/v1/routes/${id}/resume`);
    expect(resume.body).toMatchObject({ status: 409, current_status: 'pending' });

    const deleted = await server.request('DELETE', `/v1/routes/${id}`);
    expect(deleted.status, deleted.text).toBe(200);
    expect(deleted.body).toMatchObject({ status: 'deleted', removed_by: 'admin' });
    expect(await h1Has(key)).toBeUndefined();
    expect(await events(id)).toEqual([
      { actor: 'admin', action: 'create', from: null, to: 'pending' },
      { actor: 'admin', action: 'delete', from: 'pending', to: 'deleted' },
    ]);
  });

  it('when wait=0, then 202 points at the apply run, which then shows kind apply', async () => {
    const key = { to: '203.0.113.32/28' };
    const res = await server.request('POST', '/v1/routes?wait=0', {
      body: { host: 'h2', to: key.to, dev: 'eth0' },
    });
    expect(res.status, res.text).toBe(202);
    const runId = res.body.sync.run_id as string;
    expect(runId).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('location')).toBe(`/v1/runs/${runId}`);
    expect(res.body).toMatchObject({ status: 'active', sync: { state: 'applying' } });

    const run = await poll('the apply run to finish', async () => {
      const r = await server.request('GET', `/v1/runs/${runId}`, { token: 'viewer' });
      return r.body.finished_at ? r.body : undefined;
    });
    expect(run).toMatchObject({ kind: 'apply', status: 'succeeded', requested_by: 'reconciler' });
    expect(run.hosts).toContain('h2');
    await kernelHas(fleet.lab, 'h2', key);
    const route = await poll('route in sync', async () => {
      const r = await getRoute(res.body.id);
      return r.sync.state === 'in_sync' ? r : undefined;
    });
    expect(route.sync.run_id).toBe(runId);
  });
});
