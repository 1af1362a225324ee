import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  atOffset,
  compatClient,
  expectMessage,
  listed,
  managedRoutes,
  MSG,
} from '../../helpers/compat.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';
import { useLab } from '../../helpers/lab.ts';
import { kernelHas, poll } from '../../helpers/routes.ts';
import { sleep } from '../../helpers/runs.ts';
import { spawnServer, type ServerProcess } from '../../helpers/server-process.ts';

// A route scheduled through /routes/, the server killed with -9 before its create_at, and a new
// server started after it: the missed transition fires once.
const T = 120_000;
const postgres = inject('templateDatabase') !== null;

// Room for the gather the PUT does before it stores the route, so that it is stored pending.
const CREATE_IN_MS = 8_000;

describe.skipIf(!postgres)('a compat server killed with -9 and started again (Postgres)', () => {
  const fleet = useLab(2);
  let database: TestDatabase;
  const started: ServerProcess[] = [];

  beforeAll(async () => {
    database = await createTestDatabase(inject('templateDatabase'));
  }, T);

  afterAll(async () => {
    for (const s of started) await s.stop();
    started[0]?.cleanup();
    await database?.drop();
  }, T);

  const spawn = async () => {
    const s = await spawnServer({
      DATABASE_URL: database.url!,
      INVENTORY: fleet.lab.inventoryPath,
      COMPAT_HOST: 'h1',
      // Restarts share the data dir, as a restarted service would (its pid file is stale).
      ...(started[0] ? { DATA_DIR: started[0].dataDir } : {}),
    });
    started.push(s);
    return s;
  };

  it(
    'when the server dies while a compat route is pending, then a server started after create_at applies it once',
    { timeout: T },
    async () => {
      const knex = database.db.knex;
      const to = '203.0.113.96/28';
      const first = await spawn();
      const createAt = new Date(Date.now() + CREATE_IN_MS);
      const put = await compatClient(first).put({
        to,
        dev: 'eth0',
        create_at: atOffset(createAt, '-03:00'),
      });
      expectMessage(put, 201, MSG.added);
      const [stored] = await knex('routes').where({ destination: to });
      expect(stored).toMatchObject({ status: 'pending', create_at: createAt });

      await first.kill();
      // Nobody fires the transition while no server runs.
      await sleep(Math.max(0, createAt.getTime() - Date.now()) + 1_000);
      const [still] = await knex('routes').where({ id: stored.id });
      expect(still.status).toBe('pending');
      expect(await managedRoutes(fleet.lab)).toEqual([]);

      const second = await spawn();
      expect(await kernelHas(fleet.lab, 'h1', { to })).toMatchObject({ dev: 'eth0' });
      await poll('the route in sync', async () => {
        const [row] = await knex('routes').where({ id: stored.id, sync_state: 'in_sync' });
        return row;
      });

      // Once: one row, one activation, one route in the kernel.
      expect(await knex('routes').where({ destination: to })).toHaveLength(1);
      const events = await knex('route_events')
        .where({ route_id: stored.id })
        .orderBy('id')
        .select('action', 'from_status', 'to_status');
      expect(events).toEqual([
        { action: 'create', from_status: null, to_status: 'pending' },
        { action: 'activate', from_status: 'pending', to_status: 'active' },
      ]);
      expect(await managedRoutes(fleet.lab)).toEqual([{ to, gateway: null, dev: 'eth0' }]);
      expect(await listed(compatClient(second), to)).toMatchObject({
        active: true,
        status: 'active',
        create_at: createAt.toISOString(),
      });
    },
  );
});
