import { beforeAll, describe, expect, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import { sleep } from '../../helpers/runs.ts';
import { useTestServer, type TestResponse } from '../../helpers/server.ts';

// Counts, not time: a storm of viewer refreshes must cost a bounded number of gather runs, and a
// write sent during it must not queue behind further gathers of its host.
const T = 180_000;
const STORM = 300;

interface RunRow {
  id: string;
  kind: string;
  hosts: string[] | string;
  created_at: Date;
  started_at: Date | null;
}

describe('a storm of refreshes of one host', { timeout: T }, () => {
  const fleet = useLab(2);
  const server = useTestServer(
    () => ({
      INVENTORY: fleet.lab.inventoryPath,
      REFRESH_MIN_INTERVAL_S: '2',
      // One slot: without priority, a queued gather would take it before the apply.
      MAX_CONCURRENT_RUNS: '1',
    }),
    T,
  );
  let answers: TestResponse[];
  let created: TestResponse;
  let runs: RunRow[];

  const runsOf = async () =>
    (await server.database.db
      .knex('runs')
      .select('id', 'kind', 'hosts', 'created_at', 'started_at')
      .orderBy('created_at')) as RunRow[];

  beforeAll(async () => {
    const storm = Array.from({ length: STORM }, () =>
      server.request('GET', '/v1/hosts/h1?refresh=true', { token: 'viewer' }),
    );
    // The create goes in once the storm's gather is under way.
    for (let i = 0; i < 200 && !(await runsOf()).some((r) => r.kind === 'gather'); i++) {
      await sleep(50);
    }
    const create = server.request('POST', '/v1/routes?wait=120', {
      token: 'operator',
      body: { host: 'h1', to: '203.0.113.64/26', via: fleet.lab.hosts[1]!.ipv4 },
    });
    // A second wave after the first gather: served from it, or one more gather at most.
    const second = (async () => {
      await sleep(500);
      return Promise.all(
        Array.from({ length: STORM / 3 }, () =>
          server.request('GET', '/v1/hosts/h1?refresh=true', { token: 'viewer' }),
        ),
      );
    })();
    answers = [...(await Promise.all(storm)), ...(await second)];
    created = await create;
    runs = await runsOf();
  }, T);

  it('when every refresh is answered, then each is a 200 with the host state', () => {
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    expect(answers.every((a) => a.body.state?.links?.length > 0)).toBe(true);
  });

  it(`when ${STORM + STORM / 3} refreshes arrive together, then at most two gather runs start`, () => {
    const gathers = runs.filter((r) => r.kind === 'gather');
    expect(gathers.length).toBeGreaterThanOrEqual(1);
    expect(gathers.length).toBeLessThanOrEqual(2);
  });

  it('when a route is created during the storm, then it is applied', () => {
    expect(created.status, created.text).toBe(201);
    expect(created.body.sync.state).toBe('in_sync');
  });

  it('when the apply was queued, then no gather of the host created after it started before it', () => {
    const apply = runs.find((r) => r.kind === 'apply')!;
    expect(apply.started_at).not.toBeNull();
    const later = runs.filter((r) => r.kind === 'gather' && r.created_at > apply.created_at);
    for (const g of later) {
      expect(g.started_at === null || g.started_at >= apply.started_at!).toBe(true);
    }
  });
});
