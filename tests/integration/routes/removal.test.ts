import { describe, expect, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import { expectProblem } from '../../helpers/problem.ts';
import {
  eventTrail,
  findRoute,
  kernelLacks,
  ownedRoutes,
  poll,
  ROUTE_PROTO,
  routeRow,
  createRoute,
  FAST_RETRIES,
} from '../../helpers/routes.ts';
import { useTestServer } from '../../helpers/server.ts';

// A route leaving the kernel whose removal fails is not in sync: it is retried until it is gone.
const T = 120_000;

describe('a route whose removal the kernel refuses, on a lab of 1 host', { timeout: T }, () => {
  const fleet = useLab(1);
  const server = useTestServer(() => ({ INVENTORY: fleet.lab.inventoryPath, ...FAST_RETRIES }), T);

  const ip = (...args: string[]) => nsExec(fleet.lab, 'h1', ['ip', 'route', ...args]);

  it('when the kernel refuses to remove a deleted route, then the delete is a 502 with the reason and the route is retried until it is gone', async () => {
    const to = '203.0.113.144/28';
    const { id } = await createRoute(server, { host: 'h1', to, dev: 'eth0' });

    // The module removes by (table, to, metric); a route that also has a TOS does not match
    // that, so the kernel answers the removal "No such process": any refused removal would do.
    await ip('del', to, 'proto', ROUTE_PROTO);
    await ip('add', to, 'tos', '0x10', 'dev', 'eth0', 'proto', ROUTE_PROTO);

    const deleted = await server.request('DELETE', `/v1/routes/${id}`);
    expectProblem(deleted, 502, 'apply-failed', {
      detail: new RegExp(`could not remove ${to}.*No such process`),
    });
    expect(deleted.body).toMatchObject({ host: 'h1', route_id: id });
    const row = await routeRow(server.database.db.knex, id);
    expect(row).toMatchObject({
      status: 'deleted',
      sync_state: 'failed',
      sync_error: deleted.body.detail,
    });
    expect(row.sync_retry_at).toBeInstanceOf(Date);
    expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), { to })).toBeDefined();

    // Retried unasked, and still failed while the kernel keeps refusing.
    const retried = await poll('a retry run', async () => {
      const r = await routeRow(server.database.db.knex, id);
      return r.last_run_id !== row.last_run_id ? r : undefined;
    });
    expect(retried).toMatchObject({ sync_state: 'failed', sync_error: row.sync_error });

    // Once the route is one the removal matches, a retry removes it and the route is in sync.
    await ip('del', to, 'tos', '0x10', 'proto', ROUTE_PROTO);
    await ip('add', to, 'dev', 'eth0', 'proto', ROUTE_PROTO);
    await kernelLacks(fleet.lab, 'h1', { to });
    const converged = await poll('route in sync', async () => {
      const r = await routeRow(server.database.db.knex, id);
      return r.sync_state === 'in_sync' ? r : undefined;
    });
    expect(converged).toMatchObject({ status: 'deleted', sync_error: null, sync_retry_at: null });
    expect(await eventTrail(server.database.db.knex, id)).toEqual([
      ['create', null, 'active'],
      ['delete', 'active', 'deleted'],
    ]);
  });
});
