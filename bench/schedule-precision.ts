// Schedule precision: N routes (default 100) created pending, their create_at spread over the
// next ~10 s; for each, the delay between its create_at and its appearance in the kernel, read
// from `ip -ts monitor route` inside the host's namespace (the kernel's own event, timestamped by
// ip). Prints p50/p95/max of the delay. Goal: p95 at most 1.0 s.
import { performance } from 'node:perf_hooks';
import { execa, type ResultPromise } from 'execa';
import {
  benchServer,
  databaseLabel,
  envInt,
  isMain,
  log,
  median,
  ms,
  runAsScript,
  table,
  withCleanup,
  type BenchResult,
  percentile,
} from './lib.ts';
import {
  PROTO,
  api,
  applyRunCount,
  assertKernelCounts,
  benchFleet,
  destinations,
  recentApplyRuns,
  sleep,
  type ApiRoute,
  type FleetHost,
} from './routes-lib.ts';

const NAME = 'schedule-precision';
const DEADLINE_MS = 240_000;

/** `[2026-11-23T14:27:33.750867] <dst> dev eth0 proto 147 ...` (local time, microseconds). */
const MONITOR_LINE = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})\]\s+(\S+)\s+(.*)$/;

/** Watches a namespace's route additions; `seen` maps each marked destination to epoch ms. */
function monitor(host: FleetHost, seen: Map<string, number>): ResultPromise {
  const child = execa('ip', ['-n', host.netns, '-ts', 'monitor', 'route'], {
    reject: false,
    stdin: 'ignore',
    buffer: false,
  });
  let rest = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    for (const line of lines) {
      const m = MONITOR_LINE.exec(line);
      if (!m || m[3] === 'Deleted' || !m[4]!.includes(`proto ${PROTO}`)) continue;
      // No offset in the text: Date parses it as local time, which is how ip printed it.
      const at = new Date(m[1]!).getTime() + Number(m[2]) / 1000;
      if (!seen.has(m[3]!)) seen.set(m[3]!, at);
    }
  });
  return child;
}

export async function schedulePrecision(): Promise<BenchResult> {
  const n = envInt('BENCH_ROUTES', 100, 1, 5000);
  const hostsWanted = envInt('BENCH_HOSTS', 1, 1, 13);
  const spreadMs = envInt('BENCH_SPREAD_MS', 10_000, 100, 120_000);
  const leadMs = envInt('BENCH_LEAD_MS', 1_500, 200, 60_000);
  log(
    `== ${NAME}: ${n} routes on ${hostsWanted} host(s), create_at spread over ${spreadMs / 1000} s, ` +
      `${databaseLabel()} ==`,
  );
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    const fleet = await benchFleet(cleanup, hostsWanted);
    const hosts = fleet.hosts;
    const server = await benchServer(cleanup, { INVENTORY: fleet.inventoryPath });

    // Untimed warm-up: one immediate route per host (ansible's caches, first SSH connections).
    const warm = await api<{ counts: Record<string, number> }>(
      server,
      'POST',
      '/v1/routes',
      hosts.map((h) => ({ host: h.name, to: '203.0.113.0/32', dev: 'eth0' })),
    );
    if (warm.status !== 201)
      throw new Error(`warm-up: ${warm.status} ${JSON.stringify(warm.body)}`);

    const seen = new Map<string, number>();
    const monitors = hosts.map((h) => monitor(h, seen));
    cleanup.defer('ip monitor', async () => {
      for (const m of monitors) m.kill();
      await Promise.all(monitors);
    });
    await sleep(200);

    // Route i (on host i mod H) is due at start + lead + i * spread / n.
    const dests = destinations(n, 0);
    const start = Date.now();
    const dueAt = dests.map((_, i) => start + leadMs + Math.round((i * spreadMs) / n));
    const body = dests.map((to, i) => ({
      host: hosts[i % hosts.length]!.name,
      to,
      dev: 'eth0',
      create_at: new Date(dueAt[i]!).toISOString(),
    }));
    const runsBefore = await applyRunCount(server);
    const created = await api<{ items: { route: ApiRoute }[] }>(server, 'POST', '/v1/routes', body);
    if (created.status !== 201 || created.body.items.some((x) => x.route.status !== 'pending')) {
      throw new Error(
        `POST /v1/routes: ${created.status} ${JSON.stringify(created.body).slice(0, 800)}`,
      );
    }
    const firstDue = dueAt[0]! - Date.now();
    if (firstDue < 0) throw new Error(`the POST took ${ms(created.ms)}, past the first create_at`);
    log(
      `POST of ${n} pending routes answered in ${ms(created.ms)}, ${ms(firstDue)} before the first is due`,
    );

    const deadline = performance.now() + spreadMs + leadMs + 60_000;
    const missing = () => dests.filter((d) => !seen.has(d));
    while (missing().length > 0 && performance.now() < deadline) await sleep(100);
    if (missing().length > 0) {
      throw new Error(
        `${missing().length} of ${n} routes never reached the kernel: ${missing()[0]}...`,
      );
    }
    for (const [i, h] of hosts.entries()) {
      // Its share of the N routes, plus the warm-up route.
      await assertKernelCounts(
        [h],
        Math.floor(n / hosts.length) + (i < n % hosts.length ? 1 : 0) + 1,
      );
    }
    const runs = (await applyRunCount(server)) - runsBefore;
    // The last run has put its routes in the kernel but may not have ended yet.
    let runList = await recentApplyRuns(server, runs);
    for (let i = 0; i < 300 && runList.some((r) => !r.finished_at); i++) {
      await sleep(100);
      runList = await recentApplyRuns(server, runs);
    }

    const delays = dests.map((to, i) => seen.get(to)! - dueAt[i]!);
    const early = delays.filter((d) => d < 0).length;
    const p50 = percentile(delays, 50);
    const p95 = percentile(delays, 95);
    const max = Math.max(...delays);
    log('');
    log(
      table([
        ['delay create_at -> in kernel', 'value'],
        ['min', ms(Math.min(...delays))],
        ['p50', ms(p50)],
        ['mean', ms(delays.reduce((a, b) => a + b, 0) / n)],
        ['p95', ms(p95)],
        ['max', ms(max)],
      ]),
    );
    log('');
    // Where a delay comes from: waiting for the host's current run to end, then the next run's
    // way from its start to the kernel (ansible start-up, SSH, module), then its tail.
    const runRows = runList.map((r) => {
      const started = Date.parse(r.started_at!);
      const finished = Date.parse(r.finished_at!);
      const mine = dests.filter((d, i) => {
        const at = seen.get(d)!;
        return dueAt[i]! <= at && at >= started && at <= finished;
      });
      const times = mine.map((d) => seen.get(d)!);
      return {
        startAt: started - dueAt[0]!,
        queueMs: r.queueMs,
        runMs: r.runMs,
        routes: mine.length,
        toKernelMs: times.length ? Math.min(...times) - started : NaN,
        tailMs: times.length ? finished - Math.max(...times) : NaN,
      };
    });
    log('');
    log(
      table([
        [
          'apply run',
          'started (after 1st create_at)',
          'queued',
          'ran',
          'routes',
          'start -> kernel',
          'kernel -> end',
        ],
        ...runRows.map((r, i) => [
          String(i + 1),
          ms(r.startAt),
          ms(r.queueMs),
          ms(r.runMs),
          String(r.routes),
          ms(r.toKernelMs),
          ms(r.tailMs),
        ]),
      ]),
    );
    const carrying = runRows.filter((r) => r.routes > 0);
    log(
      `medians over the runs that carried routes: ran ${ms(median(carrying.map((r) => r.runMs)))}, ` +
        `start -> kernel ${ms(median(carrying.map((r) => r.toKernelMs)))}, ` +
        `kernel -> end ${ms(median(carrying.map((r) => r.tailMs)))}`,
    );
    log(
      `${runs} apply runs for ${n} routes; ${early} appeared before their create_at; ` +
        `median delay ${ms(median(delays))}`,
    );
    log(`p95 = ${(p95 / 1000).toFixed(2)} s (goal <= 1.00 s)`);
    return {
      name: NAME,
      rows: [
        {
          what: `create_at -> kernel delay, p95 over ${n} routes (${runs} runs)`,
          subject: ms(p95),
          baseline: '1000 ms',
          ratio: p95 / 1000,
          goal: '<= 1.00x (p95 <= 1.0 s)',
          met: p95 <= 1000,
        },
      ],
    };
  });
}

if (isMain(import.meta.url)) runAsScript(schedulePrecision);
