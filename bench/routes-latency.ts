// Latency: one route created through the API (POST /v1/routes, default wait) until the answer
// says it is in the kernel, against a bare single-host ansible-playbook run of apply.yml with
// that one route (same module, the same desired file the reconciler writes, same environment).
// Median of K each,
// interleaved. Goal: at most 1.2x. Also where the API's time goes, from the run's timestamps.
import { moduleRoute } from '../src/routes/route-results.ts';
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
  tempDir,
  withCleanup,
  type BenchResult,
} from './lib.ts';
import {
  PROTO,
  api,
  applyHostVars,
  bareApply,
  benchFleet,
  destinations,
  flushOwned,
  kernelCount,
  type ApiRoute,
} from './routes-lib.ts';

const NAME = 'routes-latency';
const DEADLINE_MS = 290_000;

interface RunBody {
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  status: string;
}

interface ApiSample {
  totalMs: number;
  /** request sent → run row inserted (HTTP, validation, route insert + work row, claim, run insert) */
  acceptMs: number;
  /** run inserted → running (slot, update) */
  queueMs: number;
  /** running → finished (workspace, ansible-playbook, SSH cleanup, results) */
  runMs: number;
  /** run finished → answer read (sync write, route re-read, response) */
  replyMs: number;
}

export async function routesLatency(): Promise<BenchResult> {
  const reps = envInt('BENCH_REPS', 5, 1, 50);
  log(
    `== ${NAME}: one route, API create (wait) vs bare ansible-playbook, median of ${reps}, ${databaseLabel()} ==`,
  );
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    const fleet = await benchFleet(cleanup, 1);
    const host = fleet.hosts[0]!;
    const server = await benchServer(cleanup, { INVENTORY: fleet.inventoryPath });
    const scratch = await tempDir(cleanup, 'latency');
    const dests = destinations(2 * reps + 2, 0);
    let next = 0;

    const apiCreate = async (): Promise<ApiSample> => {
      const to = dests[next++]!;
      const sentAt = Date.now();
      const r = await api<ApiRoute>(server, 'POST', '/v1/routes', {
        host: host.name,
        to,
        dev: 'eth0',
      });
      const receivedAt = Date.now();
      if (r.status !== 201 || r.body.sync.state !== 'in_sync') {
        throw new Error(`POST /v1/routes: ${r.status} ${JSON.stringify(r.body)}`);
      }
      if ((await kernelCount(host.netns)) !== 1) throw new Error(`${to} is not in the kernel`);
      const run = (await api<RunBody>(server, 'GET', `/v1/runs/${r.body.sync.run_id}`)).body;
      // Untimed: take it out again so that every sample applies exactly one route.
      const del = await api<ApiRoute>(server, 'DELETE', `/v1/routes/${r.body.id}`);
      if (del.status !== 200 || (await kernelCount(host.netns)) !== 0) {
        throw new Error(`DELETE: ${del.status} ${JSON.stringify(del.body)}`);
      }
      const created = Date.parse(run.created_at);
      const started = Date.parse(run.started_at!);
      const finished = Date.parse(run.finished_at!);
      return {
        totalMs: r.ms,
        acceptMs: created - sentAt,
        queueMs: started - created,
        runMs: finished - started,
        replyMs: receivedAt - finished,
      };
    };

    const bareCreate = async (): Promise<number> => {
      const to = dests[next++]!;
      const route = moduleRoute({
        id: '00000000-0000-4000-8000-000000000000',
        to,
        table: 254,
        metric: 1024,
        via: null,
        dev: 'eth0',
        scope: null,
        src: null,
        onlink: false,
        force: false,
      } as Parameters<typeof moduleRoute>[0]);
      const hostVars = await applyHostVars(
        server,
        new Map([[host.name, { proto: PROTO, routes: [route] }]]),
      );
      const r = await bareApply({ scratch, inventoryPath: fleet.inventoryPath, hostVars });
      if ((await kernelCount(host.netns)) !== 1) throw new Error(`${to} is not in the kernel`);
      await flushOwned(host.netns);
      return r.ms;
    };

    // One untimed round (ansible's caches, the host's first SSH connection), then K rounds
    // alternating which side goes first.
    await apiCreate();
    await bareCreate();
    const apiSamples: ApiSample[] = [];
    const bareSamples: number[] = [];
    for (let i = 0; i < reps; i++) {
      if (i % 2 === 0) {
        apiSamples.push(await apiCreate());
        bareSamples.push(await bareCreate());
      } else {
        bareSamples.push(await bareCreate());
        apiSamples.push(await apiCreate());
      }
      log(
        `round ${i + 1}/${reps}: API ${ms(apiSamples.at(-1)!.totalMs)}, bare ${ms(bareSamples.at(-1)!)}`,
      );
    }
    const apiMs = median(apiSamples.map((x) => x.totalMs));
    const bareMs = median(bareSamples);
    const r = apiMs / bareMs;
    log('');
    log(
      table([
        ['way', 'median', 'samples (ms)'],
        [
          'API POST /v1/routes (wait)',
          ms(apiMs),
          apiSamples.map((x) => x.totalMs.toFixed(0)).join(' '),
        ],
        [
          'bare ansible-playbook, 1 route',
          ms(bareMs),
          bareSamples.map((x) => x.toFixed(0)).join(' '),
        ],
      ]),
    );
    log('');
    log('API breakdown (medians, from the run record; ms resolution):');
    const med = (k: keyof ApiSample) => ms(median(apiSamples.map((x) => x[k])));
    log(
      table([
        ['phase', 'median', 'what'],
        ['accept', med('acceptMs'), 'HTTP, validation, route insert + work row, claim, run insert'],
        ['queue', med('queueMs'), 'run slot, mark running'],
        ['run', med('runMs'), 'workspace, ansible-playbook, SSH cleanup, result extraction'],
        ['reply', med('replyMs'), 'run finish, sync write, work row, route re-read, response'],
      ]),
    );
    log('');
    log(`API / bare ansible-playbook = ${ratio(r)} (goal <= 1.20x), +${ms(apiMs - bareMs)}`);
    return {
      name: NAME,
      rows: [
        {
          what: `single create to kernel vs bare ansible-playbook (median of ${reps})`,
          subject: ms(apiMs),
          baseline: ms(bareMs),
          ratio: r,
          goal: '<= 1.20x',
          met: r <= 1.2,
        },
      ],
    };
  });
}

if (isMain(import.meta.url)) runAsScript(routesLatency);
