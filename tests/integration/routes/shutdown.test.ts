import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase } from '../../../src/db/database.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';
import { useLab } from '../../helpers/lab.ts';
import { findRoute, kernelHas, ownedRoutes } from '../../helpers/routes.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

// REMOVE_ROUTES_ON_SHUTDOWN: the kernels lose routeplane's routes while it is down, not the
// database.
const T = 120_000;
const postgres = inject('templateDatabase') !== null;

describe.skipIf(!postgres)('REMOVE_ROUTES_ON_SHUTDOWN=true, on a lab of 1 host (Postgres)', () => {
  const fleet = useLab(1);
  let database: TestDatabase;
  let server: TestServer | undefined;

  const env = () => ({
    INVENTORY: fleet.lab.inventoryPath,
    REMOVE_ROUTES_ON_SHUTDOWN: 'true',
  });
  /** The same database again: a stopped server closes the pool it was given. */
  const reopen = (): TestDatabase => ({
    ...database,
    db: openDatabase({ databaseUrl: database.url, dataDir: 'memory://' }),
  });

  beforeAll(async () => {
    database = await createTestDatabase(inject('templateDatabase'));
  }, T);

  afterAll(async () => {
    await server?.close();
    await database?.drop();
  }, T);

  it(
    'when the server stops, then its routes leave the kernel but stay active; when it starts again, then they are back',
    { timeout: T },
    async () => {
      const key = { to: '203.0.113.144/28' };
      const v6 = { to: '2001:db8:f0d0::/48', metric: 1024 };
      server = await startTestServer(env(), { database });
      const res = await server.request('POST', '/v1/routes', {
        body: [
          { host: 'h1', to: key.to, via: fleet.lab.gatewayV4 },
          { host: 'h1', to: v6.to, dev: 'eth0' },
          // a pending route is in the kernel neither before nor after
          { host: 'h1', to: '203.0.113.160/28', dev: 'eth0', create_at: '2100-01-01T00:00:00Z' },
        ],
      });
      expect(res.status, res.text).toBe(201);
      expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), key)).toBeDefined();

      await server.close();
      server = undefined;
      const down = await ownedRoutes(fleet.lab, 'h1');
      expect(down).toEqual([]);

      const again = reopen();
      const rows = await again.db.knex('routes').orderBy('destination').select('status');
      expect(rows.map((r) => r.status).sort()).toEqual(['active', 'active', 'pending']);
      const removal = await again.db
        .knex('runs')
        .where({ kind: 'apply', requested_by: 'reconciler' })
        .orderBy('created_at', 'desc')
        .first();
      expect(removal).toMatchObject({ status: 'succeeded' });

      server = await startTestServer(env(), { database: again });
      await kernelHas(fleet.lab, 'h1', key);
      await kernelHas(fleet.lab, 'h1', v6);
      expect(await ownedRoutes(fleet.lab, 'h1')).toHaveLength(2);
    },
  );

  it(
    'when one of two processes on the database stops, then the routes stay: the service still runs',
    { timeout: T },
    async () => {
      const key = { to: '203.0.113.176/28' };
      await server?.close();
      server = await startTestServer(env(), { database: reopen() });
      const other = await startTestServer(env(), { database: reopen() });
      try {
        const res = await server.request('POST', '/v1/routes', {
          body: { host: 'h1', to: key.to, dev: 'eth0' },
        });
        expect(res.status, res.text).toBe(201);
        await other.close();
        expect(other.logs.some((l) => l.includes('"event":"routes.kept_on_shutdown"'))).toBe(true);
        expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), key)).toBeDefined();
      } finally {
        await other.close();
      }
      await server.close();
      server = undefined;
      expect(await ownedRoutes(fleet.lab, 'h1')).toEqual([]);
    },
  );
});

describe('REMOVE_ROUTES_ON_SHUTDOWN off (the default), on a lab of 1 host', () => {
  const fleet = useLab(1);

  it('when the server stops, then its routes stay in the kernel', { timeout: T }, async () => {
    const key = { to: '203.0.113.192/28' };
    const server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath });
    try {
      const res = await server.request('POST', '/v1/routes', {
        body: { host: 'h1', to: key.to, dev: 'eth0' },
      });
      expect(res.status, res.text).toBe(201);
    } finally {
      await server.close();
    }
    expect(findRoute(await ownedRoutes(fleet.lab, 'h1'), key)).toBeDefined();
  });
});
