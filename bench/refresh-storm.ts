// Refresh storm: N concurrent viewer GET /v1/hosts/h1?refresh=true (default 300) share one
// gather run (single flight; one within REFRESH_MIN_INTERVAL_S of the last is served from it),
// and gathers never hold a write back. Measures, on a lab of 2 hosts (h1 target, h2 gateway):
// a route create (POST /v1/routes, default wait, until in_sync and in the kernel) when quiet and
// while a storm is in flight, median of K each, interleaved (goal: storm / quiet close to 1);
// and the storm itself: p50/p95/max of the refresh answers and the gather runs it started,
// against the physical limit (`ip -j addr` + `ip -j route` in the namespace), one bare
// ansible-playbook of gather_state.yml, and the naive way (N bare gathers in sequence, computed).
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import type { RunningServer } from '../src/server.ts';
import {
  PLAYBOOKS_DIR,
  VIEWER_TOKEN,
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
  percentile,
} from './lib.ts';
import {
  api,
  bareAnsible,
  benchFleet,
  destinations,
  kernelCount,
  sleep,
  type ApiRoute,
  type ApiRun,
} from './routes-lib.ts';

const NAME = 'refresh-storm';
const DEADLINE_MS = 290_000;
const GATHER_PLAYBOOK = path.join(PLAYBOOKS_DIR, 'gather_state.yml');
/** The server's REFRESH_MIN_INTERVAL_S, its default: a storm must start after it has passed. */
const REFRESH_MIN_INTERVAL_S = 2;
/** How long after the storm's first request the create is sent. */
const CREATE_DELAY_MS = 100;

interface CreateSample {
  /** POST sent → answer read (in_sync). */
  ms: number;
  /** The apply run's queue time: created → started (waiting for a slot or the host). */
  queueMs: number;
  /** The apply run itself: started → finished. */
  runMs: number;
}

interface StormSample {
  /** Each refresh answer's latency, request sent → body read. */
  latencies: number[];
  /** First request sent → last answer read. */
  allMs: number;
  /** Gather runs created during the storm. */
  gathers: number;
  /** The storm's first gather run: queue and run times. */
  gather: { queueMs: number; runMs: number };
  create: CreateSample;
}

function runTimes(run: ApiRun): { queueMs: number; runMs: number } {
  const started = Date.parse(run.started_at ?? run.created_at);
  return {
    queueMs: started - Date.parse(run.created_at),
    runMs: Date.parse(run.finished_at ?? run.created_at) - started,
  };
}

async function gatherRunCount(server: RunningServer): Promise<number> {
  const r = await api<{ total: number }>(server, 'GET', '/v1/runs?kind=gather&limit=1');
  if (r.status !== 200) throw new Error(`GET /v1/runs: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.total;
}

/**
 * A viewer's refresh of one host, its latency and when its answer was read; throws unless it is
 * a 200 with the host's links.
 */
async function viewerRefresh(
  server: RunningServer,
  host: string,
): Promise<{ ms: number; at: number }> {
  const t0 = performance.now();
  const res = await fetch(`${server.url}/v1/hosts/${host}?refresh=true`, {
    headers: { authorization: `Bearer ${VIEWER_TOKEN}` },
  });
  const text = await res.text();
  const at = performance.now();
  if (res.status !== 200)
    throw new Error(`GET /v1/hosts/${host}?refresh=true: ${res.status} ${text}`);
  const body = JSON.parse(text) as { state?: { links?: unknown[] } };
  if (!body.state?.links?.length) throw new Error(`refresh of ${host}: no links in ${text}`);
  return { ms: at - t0, at };
}

export async function refreshStorm(): Promise<BenchResult> {
  const n = envInt('BENCH_STORM', 300, 1, 5000);
  const reps = envInt('BENCH_REPS', 3, 1, 20);
  log(
    `== ${NAME}: ${n} concurrent refreshes of one host; a create during them vs quiet, median of ${reps}, ${databaseLabel()} ==`,
  );
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    const fleet = await benchFleet(cleanup, 2);
    const [target, gateway] = [fleet.hosts[0]!, fleet.hosts[1]!];
    const server = await benchServer(cleanup, {
      INVENTORY: fleet.inventoryPath,
      REFRESH_MIN_INTERVAL_S: String(REFRESH_MIN_INTERVAL_S),
    });
    const scratch = await tempDir(cleanup, 'storm');
    const dests = destinations(2 * reps + 4, 256);
    let next = 0;
    // When the last gather through the API ended: a storm within the interval would be served
    // from it and start none, so each storm waits until the interval has passed.
    let lastGatherAt = 0;

    const create = async (): Promise<CreateSample> => {
      const to = dests[next++]!;
      const r = await api<ApiRoute>(server, 'POST', '/v1/routes', {
        host: target.name,
        to,
        via: gateway.ipv4,
      });
      if (r.status !== 201 || r.body.sync.state !== 'in_sync') {
        throw new Error(`POST /v1/routes: ${r.status} ${JSON.stringify(r.body)}`);
      }
      if ((await kernelCount(target.netns)) !== 1) throw new Error(`${to} is not in the kernel`);
      const run = (await api<ApiRun>(server, 'GET', `/v1/runs/${r.body.sync.run_id}`)).body;
      // Untimed: take it out again so that every sample applies exactly one route.
      const del = await api<ApiRoute>(server, 'DELETE', `/v1/routes/${r.body.id}`);
      if (del.status !== 200 || (await kernelCount(target.netns)) !== 0) {
        throw new Error(`DELETE: ${del.status} ${JSON.stringify(del.body)}`);
      }
      return { ms: r.ms, ...runTimes(run) };
    };

    /** The oldest of the newest `count` gather runs: the storm's first. */
    const firstGatherSince = async (count: number): Promise<ApiRun> => {
      const r = await api<{ items: ApiRun[] }>(
        server,
        'GET',
        `/v1/runs?kind=gather&limit=${Math.max(1, count)}`,
      );
      const items = [...r.body.items].sort(
        (a, b) => Date.parse(a.created_at) - Date.parse(b.created_at),
      );
      return items[0]!;
    };

    const storm = async (): Promise<StormSample> => {
      const wait = lastGatherAt + REFRESH_MIN_INTERVAL_S * 1000 + 300 - performance.now();
      if (wait > 0) await sleep(wait);
      const gathersBefore = await gatherRunCount(server);
      const t0 = performance.now();
      const refreshes = Promise.all(
        Array.from({ length: n }, () => viewerRefresh(server, target.name)),
      );
      await sleep(CREATE_DELAY_MS);
      const [answers, created] = await Promise.all([refreshes, create()]);
      const lastAnswer = Math.max(...answers.map((a) => a.at));
      lastGatherAt = lastAnswer;
      const gathers = (await gatherRunCount(server)) - gathersBefore;
      return {
        latencies: answers.map((a) => a.ms),
        allMs: lastAnswer - t0,
        gathers,
        gather: runTimes(await firstGatherSince(gathers)),
        create: created,
      };
    };

    /** The physical limit: what a gather reads, read straight in the host's namespace. */
    const ipFloor = async (): Promise<number> => {
      const t0 = performance.now();
      const addr = await execa('ip', ['netns', 'exec', target.netns, 'ip', '-j', 'addr', 'show']);
      const routes = await execa('ip', [
        ...['netns', 'exec', target.netns],
        ...['ip', '-j', 'route', 'show', 'table', 'all'],
      ]);
      const elapsed = performance.now() - t0;
      if (!(JSON.parse(addr.stdout) as unknown[]).length || !JSON.parse(routes.stdout)) {
        throw new Error('ip -j printed nothing');
      }
      return elapsed;
    };

    const bareGather = async (): Promise<number> => {
      const r = await bareAnsible({
        scratch,
        inventoryPath: fleet.inventoryPath,
        hosts: [target.name],
        extravars: {},
        playbook: GATHER_PLAYBOOK,
      });
      return r.ms;
    };

    // One untimed create and bare gather (ansible's caches, the host's first SSH connection),
    // then K rounds alternating whether the quiet create or the storm goes first; the floors
    // are measured in every round, alternating too.
    await create();
    await bareGather();
    const quiet: CreateSample[] = [];
    const storms: StormSample[] = [];
    const bare: number[] = [];
    const floor: number[] = [];
    for (let i = 0; i < reps; i++) {
      if (i % 2 === 0) {
        quiet.push(await create());
        storms.push(await storm());
        bare.push(await bareGather());
        floor.push(await ipFloor());
      } else {
        storms.push(await storm());
        quiet.push(await create());
        floor.push(await ipFloor());
        bare.push(await bareGather());
      }
      const s = storms.at(-1)!;
      const q = quiet.at(-1)!;
      log(
        `round ${i + 1}/${reps}: create quiet ${ms(q.ms)} (apply queued ${ms(q.queueMs)}, ran ` +
          `${ms(q.runMs)}), during storm ${ms(s.create.ms)} (apply queued ` +
          `${ms(s.create.queueMs)}, ran ${ms(s.create.runMs)})`,
      );
      log(
        `  storm: p50 ${ms(percentile(s.latencies, 50))}, p95 ${ms(percentile(s.latencies, 95))}, ` +
          `max ${ms(s.allMs)}, ${s.gathers} gather run(s) (queued ${ms(s.gather.queueMs)}, ran ` +
          `${ms(s.gather.runMs)}); bare gather ${ms(bare.at(-1)!)}, ip ${ms(floor.at(-1)!)}`,
      );
    }

    const quietMs = median(quiet.map((x) => x.ms));
    const stormCreateMs = median(storms.map((x) => x.create.ms));
    const createRatio = stormCreateMs / quietMs;
    const p50 = median(storms.map((s) => percentile(s.latencies, 50)));
    const p95 = median(storms.map((s) => percentile(s.latencies, 95)));
    const maxMs = median(storms.map((s) => s.allMs));
    const gathers = storms.map((s) => s.gathers);
    const bareMs = median(bare);
    const floorMs = median(floor);
    const naiveMs = n * bareMs;
    const samples = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' ');

    log('');
    log(`1. a route create (POST /v1/routes, wait, to in_sync and the kernel), median of ${reps}:`);
    log(
      table([
        ['when', 'median', 'apply queued', 'apply ran', 'samples (ms)'],
        [
          'quiet',
          ms(quietMs),
          ms(median(quiet.map((x) => x.queueMs))),
          ms(median(quiet.map((x) => x.runMs))),
          samples(quiet.map((x) => x.ms)),
        ],
        [
          `${n} refreshes in flight`,
          ms(stormCreateMs),
          ms(median(storms.map((x) => x.create.queueMs))),
          ms(median(storms.map((x) => x.create.runMs))),
          samples(storms.map((x) => x.create.ms)),
        ],
      ]),
    );
    log('');
    log(
      `2. the storm: ${n} concurrent viewer refreshes of ${target.name} (medians over ${reps} storms), ` +
        `gather runs per storm: ${gathers.join(', ')} (a run per request would be ${n})`,
    );
    log(
      table([
        ['what', 'time', 'storm max / it'],
        ['refresh answer, p50', ms(p50), ''],
        ['refresh answer, p95', ms(p95), ''],
        ['refresh answer, max (all answered)', ms(maxMs), '1.00x'],
        [
          'physical limit: ip -j addr + ip -j route in the netns',
          ms(floorMs),
          ratio(maxMs / floorMs),
        ],
        ['one bare ansible-playbook gather_state.yml', ms(bareMs), ratio(maxMs / bareMs)],
        [`naive: ${n} bare gathers in sequence (computed)`, ms(naiveMs), ratio(maxMs / naiveMs)],
      ]),
    );
    log('');
    log(`create during storm / quiet = ${ratio(createRatio)} (goal <= 1.50x: close to 1)`);
    log(`storm all answered / one bare gather = ${ratio(maxMs / bareMs)}`);
    log(`naive / storm = ${ratio(naiveMs / maxMs)}`);
    return {
      name: NAME,
      rows: [
        {
          what: `create during ${n} refreshes vs quiet (median of ${reps})`,
          subject: ms(stormCreateMs),
          baseline: ms(quietMs),
          ratio: createRatio,
          goal: '<= 1.50x',
          met: createRatio <= 1.5,
        },
        {
          what: `${n} refreshes all answered vs one bare gather (${gathers.join('/')} runs)`,
          subject: ms(maxMs),
          baseline: ms(bareMs),
          ratio: maxMs / bareMs,
        },
        {
          what: `${n} refreshes all answered vs ip -j in the netns`,
          subject: ms(maxMs),
          baseline: ms(floorMs),
          ratio: maxMs / floorMs,
        },
        {
          what: `naive ${n} bare gathers in sequence (computed) vs storm`,
          subject: ms(naiveMs),
          baseline: ms(maxMs),
          ratio: naiveMs / maxMs,
        },
      ],
    };
  });
}

if (isMain(import.meta.url)) runAsScript(refreshStorm);
