// Burst: N concurrent single-route creates on one host (default 200 POSTs at once, each with the
// default wait), timed until every route is in the kernel and every answer is back, against a
// single create's latency (goal: at most 3x; a run per request would be about Nx). Reports how
// many apply runs the burst started (GET /v1/runs?kind=apply).
import { performance } from 'node:perf_hooks';
import {
  benchServer,
  databaseLabel,
  envInt,
  isMain,
  log,
  median,
  ms,
  ratio,
  runAsScript,
  table,
  withCleanup,
  type BenchResult,
} from './lib.ts';
import {
  api,
  applyRunCount,
  assertKernelCounts,
  benchFleet,
  destinations,
  kernelPollers,
  kernelsReach,
  recentApplyRuns,
  type ApiRoute,
} from './routes-lib.ts';

const NAME = 'routes-burst';
const DEADLINE_MS = 290_000;

export async function routesBurst(): Promise<BenchResult> {
  const n = envInt('BENCH_BURST', 200, 2, 2000);
  const singles = envInt('BENCH_REPS', 3, 1, 20);
  log(
    `== ${NAME}: ${n} concurrent single-route creates on one host vs one create (median of ${singles}), ${databaseLabel()} ==`,
  );
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    const fleet = await benchFleet(cleanup, 1);
    const host = fleet.hosts[0]!;
    const pollers = kernelPollers(cleanup, [host]);
    const server = await benchServer(cleanup, { INVENTORY: fleet.inventoryPath });
    const dests = destinations(n + singles + 1, 0);
    let next = 0;

    const create = async (): Promise<{ route: ApiRoute; ms: number; at: number }> => {
      const r = await api<ApiRoute>(server, 'POST', '/v1/routes', {
        host: host.name,
        to: dests[next++]!,
        dev: 'eth0',
      });
      if (r.status !== 201 || r.body.sync.state !== 'in_sync') {
        throw new Error(`POST /v1/routes: ${r.status} ${JSON.stringify(r.body)}`);
      }
      return { route: r.body, ms: r.ms, at: performance.now() };
    };

    // A single create's latency: the first one untimed (ansible's caches, first SSH connection).
    // The routes stay: the burst's runs carry them too, as they would in production.
    await create();
    const single: number[] = [];
    for (let i = 0; i < singles; i++) single.push((await create()).ms);
    const singleMs = median(single);
    const before = 1 + singles;
    log(`single create: ${single.map((x) => ms(x)).join(', ')} (median ${ms(singleMs)})`);

    const runsBefore = await applyRunCount(server);
    const t0 = performance.now();
    const epoch0 = Date.now();
    const kernel = kernelsReach(pollers, before + n, { pollMs: 50, timeoutMs: 240_000 });
    const answers = await Promise.all(Array.from({ length: n }, () => create()));
    const kernelMs = (await kernel) - t0;
    const answersMs = Math.max(...answers.map((a) => a.at)) - t0;
    await assertKernelCounts([host], before + n);
    const runs = (await applyRunCount(server)) - runsBefore;
    const perRun = new Map<string, number>();
    for (const a of answers) {
      const id = a.route.sync.run_id ?? '?';
      perRun.set(id, (perRun.get(id) ?? 0) + 1);
    }
    const timeline = (await recentApplyRuns(server, runs)).map((r) => {
      const at = (iso: string | null) => ms(Date.parse(iso!) - epoch0);
      return `[${perRun.get(r.id) ?? 0} routes: ${at(r.started_at)} .. ${at(r.finished_at)}]`;
    });
    const lastInsert = Math.max(...answers.map((a) => Date.parse(a.route.created_at))) - epoch0;
    const latencies = answers.map((a) => a.ms).sort((a, b) => a - b);

    const vsSingle = answersMs / singleMs;
    log('');
    log(
      table([
        ['what', 'time', 'vs single create'],
        [`single create (median of ${singles})`, ms(singleMs), '1.00x'],
        [
          `${n} concurrent creates: all in the kernel (polled)`,
          ms(kernelMs),
          ratio(kernelMs / singleMs),
        ],
        [`${n} concurrent creates: all answered`, ms(answersMs), ratio(vsSingle)],
        ['  an answer, median', ms(median(latencies)), ''],
        ['  an answer, fastest', ms(latencies[0]!), ''],
      ]),
    );
    log('');
    log(
      `apply runs started by the burst: ${runs} (a run per request would be ${n}): ` +
        timeline.join(' '),
    );
    log(`the last of the ${n} routes was inserted ${ms(lastInsert)} after the burst began`);
    log(`burst / single create = ${ratio(vsSingle)} (goal <= 3.00x)`);
    return {
      name: NAME,
      rows: [
        {
          what: `${n} concurrent creates (all answered) vs one create; ${runs} runs`,
          subject: ms(answersMs),
          baseline: ms(singleMs),
          ratio: vsSingle,
          goal: '<= 3.00x',
          met: vsSingle <= 3,
        },
      ],
    };
  });
}

if (isMain(import.meta.url)) runAsScript(routesBurst);
