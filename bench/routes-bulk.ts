// Bulk: R routes on each of H lab hosts (default 1,000 x 20) created through the API as batch
// POSTs, timed until every kernel has them. Against the same apply playbook run by bare
// ansible-playbook with the same per-host desired files (goal: at most 1.3x), against `ip -batch` straight in
// each namespace (the physical limit), and against one Ansible task per route (the naive way,
// measured with a few routes per host and extrapolated). Kernels are cleared between phases.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { dump } from 'js-yaml';
import {
  benchServer,
  databaseLabel,
  envInt,
  isMain,
  log,
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
  applyRunCount,
  assertKernelCounts,
  applyHostVars,
  bareAnsible,
  bareApply,
  benchFleet,
  desiredFromServer,
  destinations,
  flushAll,
  ipBatchAll,
  kernelPollers,
  kernelsReach,
  recentApplyRuns,
  type ApiRoute,
  type FleetHost,
} from './routes-lib.ts';

const NAME = 'routes-bulk';
const DEADLINE_MS = 295_000;

interface Settings {
  hosts: number;
  routes: number;
  /** How many of each host's routes are IPv4 /32s (203.0.113.0/24); the rest are IPv6 /64s. */
  ipv4: number;
  /** Routes per host in the naive playbook (one task each). */
  naiveRoutes: number;
  /** Hosts the naive playbook runs on (the rest is extrapolated). */
  naiveHosts: number;
  /** Routes per POST: 0 means one POST per host. */
  chunk: number;
}

function settings(): Settings {
  const routes = envInt('BENCH_ROUTES', 1000, 1, 20_000);
  return {
    hosts: envInt('BENCH_HOSTS', 20, 1, 60),
    routes,
    ipv4: Math.min(routes, envInt('BENCH_IPV4_ROUTES', 200, 0, 256)),
    // 0 skips the naive way (it takes the longest).
    naiveRoutes: envInt('BENCH_NAIVE_ROUTES', 20, 0, 200),
    // On a few hosts only: on 2 cores even 10 tasks on all 20 hosts outlast the benchmark's
    // 5-minute cap (seen: gave up at 295 s). Its cost is extrapolated to every host.
    naiveHosts: envInt('BENCH_NAIVE_HOSTS', 4, 1, 60),
    chunk: envInt('BENCH_CHUNK', 0, 0, 20_000),
  };
}

interface ModuleRoute {
  to: string;
  dev?: string;
  via?: string;
  table: number;
  metric: number;
}

/** The line the apply module writes to `ip -batch` for a route it adds. */
function addLine(r: ModuleRoute): string {
  const forwarding = [r.via ? `via ${r.via}` : '', r.dev ? `dev ${r.dev}` : ''].filter(Boolean);
  return `route add ${r.to} ${forwarding.join(' ')} table ${r.table} metric ${r.metric} proto ${PROTO}`;
}

/** The naive playbook: one ansible.builtin.command task per route. */
function naivePlaybook(routes: ModuleRoute[]): string {
  return dump(
    [
      {
        name: 'Routes, one task each',
        hosts: 'all',
        gather_facts: false,
        tasks: routes.map((r, i) => ({
          name: `route ${i + 1}`,
          'ansible.builtin.command': `ip ${addLine(r).replace('route add', 'route replace')}`,
        })),
      },
    ],
    { lineWidth: -1 },
  );
}

export async function routesBulk(): Promise<BenchResult> {
  const s = settings();
  const total = s.hosts * s.routes;
  log(
    `== ${NAME}: ${s.routes} routes on each of ${s.hosts} lab hosts (${total} in all; ` +
      `${s.ipv4} IPv4 /32 + ${s.routes - s.ipv4} IPv6 /64 each), ${databaseLabel()} ==`,
  );
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    const tLab = performance.now();
    const fleet = await benchFleet(cleanup, s.hosts);
    const hosts = fleet.hosts;
    const names = hosts.map((h) => h.name);
    const pollers = kernelPollers(cleanup, hosts);
    log(`fleet of ${hosts.length} hosts up in ${ms(performance.now() - tLab)}`);
    const server = await benchServer(cleanup, {
      INVENTORY: fleet.inventoryPath,
      BODY_LIMIT: '64mb',
      ROUTE_WAIT_S: '240',
    });
    const scratch = await tempDir(cleanup, 'bulk');
    const dests = destinations(s.routes, s.ipv4);

    // Untimed: ansible's first start (bytecode caches) and every host's first SSH connection.
    await bareApply({
      scratch,
      inventoryPath: fleet.inventoryPath,
      hostVars: await applyHostVars(
        server,
        new Map(names.map((n) => [n, { proto: PROTO, routes: [] }])),
      ),
    });

    // 1. The API: batch POSTs (one per host unless BENCH_CHUNK says otherwise), all at once,
    // each waiting (default wait) for the run that carries it.
    const items = hosts.flatMap((h) => dests.map((to) => ({ host: h.name, to, dev: 'eth0' })));
    const chunk = s.chunk || s.routes;
    const bodies: (typeof items)[] = [];
    for (let i = 0; i < items.length; i += chunk) bodies.push(items.slice(i, i + chunk));
    const runsBefore = await applyRunCount(server);
    const t0 = performance.now();
    const epoch0 = Date.now();
    const kernelDone = kernelsReach(pollers, s.routes, { timeoutMs: 240_000 });
    const answers = await Promise.all(
      bodies.map(async (body) => {
        const r = await api<{ items: { route: ApiRoute }[]; counts: Record<string, number> }>(
          server,
          'POST',
          '/v1/routes',
          body,
        );
        return { ...r, at: performance.now() };
      }),
    );
    const apiKernelMs = (await kernelDone) - t0;
    const apiAnswerMs = Math.max(...answers.map((a) => a.at)) - t0;
    for (const a of answers) {
      if (a.status !== 201 || a.body.counts.in_sync !== a.body.items.length) {
        throw new Error(`POST /v1/routes: ${a.status} ${JSON.stringify(a.body).slice(0, 800)}`);
      }
    }
    await assertKernelCounts(hosts, s.routes);
    const apiRuns = (await applyRunCount(server)) - runsBefore;
    const runs = await recentApplyRuns(server, apiRuns);
    log(
      `API: ${bodies.length} POST(s) of ${chunk} routes; all in the kernels after ${ms(apiKernelMs)}, ` +
        `answers after ${ms(Math.min(...answers.map((a) => a.ms)))} .. ${ms(apiAnswerMs)}`,
    );
    log(
      `  ${apiRuns} apply run(s) [hosts: queued at / ran from .. to, after the first POST]: ` +
        runs
          .map((r) => {
            const at = (iso: string | null) => ms(Date.parse(iso!) - epoch0);
            return `[${r.hosts.length}: ${at(r.created_at)} / ${at(r.started_at)} .. ${at(r.finished_at)}]`;
          })
          .join(' '),
    );

    // 2. Bare ansible-playbook with the reconciler's desired files for the same routes.
    const rendered = await desiredFromServer(server, names);
    const hostVars = await applyHostVars(server, rendered);
    const desired = Object.fromEntries(
      [...rendered].map(([h, args]) => [h, args.routes as unknown as ModuleRoute[]]),
    );
    await flushAll(hosts);
    const t1 = performance.now();
    const bareKernel = kernelsReach(pollers, s.routes, { timeoutMs: 240_000 });
    const bare = await bareApply({ scratch, inventoryPath: fleet.inventoryPath, hostVars });
    const bareKernelMs = (await bareKernel) - t1;
    const added = Object.values(bare.hosts).map((h) => (h.added as unknown[] | undefined)?.length);
    if (added.some((n) => n !== s.routes)) throw new Error(`bare run added ${added.join(',')}`);
    await assertKernelCounts(hosts, s.routes);
    log(
      `bare ansible-playbook: all in the kernels after ${ms(bareKernelMs)}, exited after ${ms(bare.ms)}`,
    );

    // 3. ip -batch straight in each namespace, the same lines the module writes.
    await flushAll(hosts);
    const batchMs = await ipBatchAll(hosts, (h: FleetHost) => desired[h.name]!.map(addLine));
    await assertKernelCounts(hosts, s.routes);
    log(`ip -batch in ${hosts.length} namespaces at once: ${ms(batchMs)}`);

    // 4. Naive: a playbook with one task per route, N routes on each of a few hosts; its time
    // per route and host (fixed costs included, a small share at N = 20) times the full count.
    // Linear in hosts is generous to the naive way: with more hosts than forks and cores,
    // Ansible's per-task cost grows at least that fast.
    let naiveMs = NaN;
    const naiveHosts = hosts.slice(0, Math.min(s.naiveHosts, hosts.length));
    if (s.naiveRoutes > 0) {
      await flushAll(hosts);
      const file = path.join(scratch, 'naive.yml');
      await writeFile(file, naivePlaybook(desired[names[0]!]!.slice(0, s.naiveRoutes)));
      naiveMs = (
        await bareAnsible({
          scratch,
          inventoryPath: fleet.inventoryPath,
          hosts: naiveHosts.map((h) => h.name),
          extravars: {},
          playbook: file,
        })
      ).ms;
      await assertKernelCounts(naiveHosts, s.naiveRoutes);
    }
    const perRoute = (naiveMs / s.naiveRoutes) * (hosts.length / naiveHosts.length);
    const naiveExtrapolated = perRoute * s.routes;
    if (s.naiveRoutes > 0) {
      log(
        `naive: ${s.naiveRoutes} tasks on ${naiveHosts.length} hosts took ${ms(naiveMs)} => ` +
          `${ms(perRoute)} per route on ${hosts.length} hosts, ` +
          `${(naiveExtrapolated / 1000).toFixed(0)} s extrapolated to ${s.routes}`,
      );
    }
    await flushAll(hosts);

    // Same measurement on both sides: first poll that sees every kernel complete.
    const vsBare = apiKernelMs / bareKernelMs;
    const vsBatch = apiKernelMs / batchMs;
    const naiveVsApi = naiveExtrapolated / apiKernelMs;
    const per = (x: number) => `${(x / s.routes).toFixed(2)} ms`;
    log('');
    log(
      table([
        ['way', `${total} routes in the kernels`, 'per route (all hosts)', 'API / this'],
        ['routeplane API (batch POSTs, wait)', ms(apiKernelMs), per(apiKernelMs), '1.00x'],
        ['  (all answers received)', ms(apiAnswerMs), '', ''],
        ['bare ansible-playbook, same module', ms(bareKernelMs), per(bareKernelMs), ratio(vsBare)],
        ['  (bare: process exited)', ms(bare.ms), '', ratio(apiKernelMs / bare.ms)],
        ['ip -batch per namespace (physical limit)', ms(batchMs), per(batchMs), ratio(vsBatch)],
        ...(s.naiveRoutes > 0
          ? [
              [
                `naive: a task per route (${s.naiveRoutes} on ${naiveHosts.length} hosts, extrapolated)`,
                ms(naiveExtrapolated),
                `${perRoute.toFixed(0)} ms`,
                `${(apiKernelMs / naiveExtrapolated).toPrecision(2)}x`,
              ],
            ]
          : []),
      ]),
    );
    log('');
    log(
      `API / bare ansible-playbook = ${ratio(vsBare)} (goal <= 1.30x) with ${apiRuns} apply run(s)`,
    );
    log(`API / ip -batch = ${ratio(vsBatch)}`);
    if (s.naiveRoutes > 0) log(`naive / API = ${ratio(naiveVsApi)}`);
    return {
      name: NAME,
      rows: [
        {
          what: `${s.routes} routes x ${s.hosts} hosts to kernels: API vs bare ansible-playbook`,
          subject: ms(apiKernelMs),
          baseline: ms(bareKernelMs),
          ratio: vsBare,
          goal: '<= 1.30x',
          met: vsBare <= 1.3,
        },
        {
          what: 'API vs ip -batch in each namespace (physical limit)',
          subject: ms(apiKernelMs),
          baseline: ms(batchMs),
          ratio: vsBatch,
        },
        ...(s.naiveRoutes > 0
          ? [
              {
                what: `naive task per route (extrapolated from ${s.naiveRoutes}) vs API`,
                subject: ms(naiveExtrapolated),
                baseline: ms(apiKernelMs),
                ratio: naiveVsApi,
              },
            ]
          : []),
      ],
    };
  });
}

if (isMain(import.meta.url)) runAsScript(routesBulk);
