import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';
import { useLab } from '../../helpers/lab.ts';
import { countRows, ownedRoutes, poll } from '../../helpers/routes.ts';
import { spawnServer, type ServerProcess } from '../../helpers/server-process.ts';

// Two server processes on one Postgres database share the schedule and the hosts.
const T = 180_000;
const postgres = inject('templateDatabase') !== null;

const PER_HOST = 50;
const destination = (k: number) => `203.0.113.${100 + k}/32`;

describe.skipIf(!postgres)('two server processes on one database (Postgres)', () => {
  const fleet = useLab(2);
  let database: TestDatabase;
  const replicas: ServerProcess[] = [];

  beforeAll(async () => {
    database = await createTestDatabase(inject('templateDatabase'));
    const env = {
      DATABASE_URL: database.url!,
      INVENTORY: fleet.lab.inventoryPath,
      // Short sleeps, so that each replica looks for due rows around the same instant too.
      SCHEDULER_MAX_SLEEP_S: '1',
    };
    replicas.push(...(await Promise.all([spawnServer(env), spawnServer(env)])));
  }, T);

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    for (const r of replicas) r.cleanup();
    await database?.drop();
  }, T);

  it(
    'when 100 routes are scheduled through both, then each fires exactly once and all reach the kernels',
    { timeout: T },
    async () => {
      const knex = database.db.knex;
      const createAt = new Date(Date.now() + 5_000).toISOString();
      // Each replica gets half of the destinations, for both hosts: 50 routes each.
      const half = PER_HOST / 2;
      const batches = replicas.map((_, r) =>
        Array.from({ length: half }, (__, i) => r * half + i).flatMap((k) =>
          ['h1', 'h2'].map((host) => ({
            host,
            to: destination(k),
            dev: 'eth0',
            create_at: createAt,
          })),
        ),
      );
      const answers = await Promise.all(
        replicas.map((r, i) => r.request('POST', '/v1/routes', { body: batches[i] })),
      );
      for (const a of answers) {
        expect(a.status, a.text).toBe(201);
        expect(a.body.items).toHaveLength(PER_HOST);
      }

      await poll(
        'all 100 routes active and in sync',
        async () => {
          const n = await countRows(knex, 'routes', { status: 'active', sync_state: 'in_sync' });
          return n === 2 * PER_HOST ? true : undefined;
        },
        120_000,
        500,
      );

      const activations = await knex('route_events')
        .where({ action: 'activate' })
        .groupBy('route_id')
        .select('route_id')
        .count({ n: '*' });
      expect(activations).toHaveLength(2 * PER_HOST);
      expect(activations.filter((a) => Number(a.n) !== 1)).toEqual([]);
      expect(await countRows(knex, 'routes')).toBe(2 * PER_HOST);

      const want = Array.from({ length: PER_HOST }, (_, k) => destination(k)).sort();
      for (const host of ['h1', 'h2']) {
        const kernel = await ownedRoutes(fleet.lab, host);
        expect(kernel.map((r) => r.to).sort(), host).toEqual(want);
      }

      // At most one apply run per host at a time, whichever replica ran it.
      const runs = (await knex('runs')
        .where({ kind: 'apply' })
        .whereNotNull('started_at')
        .select('hosts', 'started_at', 'finished_at', 'owner')) as {
        hosts: string[];
        started_at: Date;
        finished_at: Date | null;
      }[];
      for (const host of ['h1', 'h2']) {
        const spans = runs
          .filter((r) => r.hosts.includes(host))
          .map((r) => [r.started_at.getTime(), (r.finished_at ?? new Date()).getTime()] as const)
          .sort((a, b) => a[0] - b[0]);
        for (let i = 1; i < spans.length; i++) {
          expect(
            spans[i]![0],
            `${host}: run ${i} starts after run ${i - 1} ends`,
          ).toBeGreaterThanOrEqual(spans[i - 1]![1]);
        }
      }
    },
  );
});
