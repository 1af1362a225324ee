// Bulk: R routes on each of H lab hosts (default 1,000 x 20) created through the API as batch
// POSTs, timed until every kernel has them. Against the floor with Ansible: bare
// ansible-playbook running one `ip -batch -` command task per host fed a prepared file of the
// same lines (goal: at most 1.3x); against `ip -batch` run in each namespace (the physical
// limit); with routeplane's own apply playbook run bare as a diagnostic (what the module and its
// inputs cost over the floor); and against one Ansible task per route (the naive way, measured
// with a few routes per host and extrapolated). Interleaved in one run, kernels cleared between
// phases. Also where the API's time goes, and the server's memory (it runs in this process).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { RunningServer } from '../src/server.ts';
import { dump } from 'js-yaml';
import {
  benchServer,
  childPids,
  cpuSeconds,
  databaseLabel,
  envInt,
  isMain,
  log,
  median,
  mib,
  ms,
  ratio,
  resetPeakRss,
  rssMiB,
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
  floorAnsible,
  flushAll,
  ipBatchFiles,
  kernelPollers,
  kernelsReach,
  moduleWindows,
  recentApplyRuns,
  type ApiRoute,
  type FleetHost,
  type KernelPoller,
  type ModuleWindow,
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

/** The kernel's metric for a route that names none (IPv6 stores 0 as 1024), as the API renders. */
function defaultRoute(to: string): ModuleRoute {
  return { to, dev: 'eth0', table: 254, metric: to.includes(':') ? 1024 : 0 };
}

/** Time until every kernel holds `expected` routes, from `t0`, and when each host got there. */
async function timedToKernels(
  pollers: KernelPoller[],
  expected: number,
  body: () => Promise<unknown>,
): Promise<{ kernelMs: number; t0: number; epoch0: number; hostAt: Map<string, number> }> {
  const hostAt = new Map<string, number>();
  const t0 = performance.now();
  const epoch0 = Date.now();
  const done = kernelsReach(pollers, expected, {
    timeoutMs: 240_000,
    onHost: (h, at) => hostAt.set(h, at - t0),
  });
  await body();
  return { kernelMs: (await done) - t0, t0, epoch0, hostAt };
}

/**
 * Controller CPU seconds from here on: this process (the server and the benchmark's client),
 * the ansible-playbook runs it reaped, and the warm runner's process tree (its runs are its
 * children, reaped by it). Ansible on the hosts (the module, sshd) is not counted, on any side.
 */
async function cpuMeter(): Promise<() => Promise<{ server: number; ansible: number }>> {
  const read = async () => {
    const warm = new Map<number, number>();
    for (const pid of await childPids('warm_ansible')) {
      const w = await cpuSeconds(pid).catch(() => null);
      if (w) warm.set(pid, w.own + w.children);
    }
    return { self: await cpuSeconds(), warm };
  };
  const start = await read();
  return async () => {
    const end = await read();
    let ansible = end.self.children - start.self.children;
    // A warm runner started meanwhile counts from zero.
    for (const [pid, c] of end.warm) ansible += c - (start.warm.get(pid) ?? 0);
    return { server: end.self.own - start.self.own, ansible };
  };
}
const cpu = (c: { server: number; ansible: number }) =>
  `${c.ansible.toFixed(1)} s ansible + ${c.server.toFixed(1)} s this process`;

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const range = (xs: number[]) =>
  xs.length === 0 ? '-' : `${ms(Math.min(...xs))} .. ${ms(Math.max(...xs))}`;

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
    // The server runs in this process (startServer, as `npm start` does): its memory is this
    // process's, less what the benchmark itself holds (its imports, the request bodies).
    const beforeServer = await rssMiB();
    const server = await benchServer(cleanup, {
      INVENTORY: fleet.inventoryPath,
      BODY_LIMIT: '64mb',
      ROUTE_WAIT_S: '240',
    });
    const scratch = await tempDir(cleanup, 'bulk');
    const dests = destinations(s.routes, s.ipv4);
    const sameLines = dests.map((to) => addLine(defaultRoute(to)));

    // The floor's and the physical limit's input: one prepared file of the lines per host.
    const floorDir = path.join(scratch, 'floor');
    await mkdir(path.join(floorDir, 'files'), { recursive: true });
    const batchFile = (h: FleetHost) => path.join(floorDir, 'files', `${h.name}.batch`);
    for (const h of hosts) await writeFile(batchFile(h), `${sameLines.join('\n')}\n`);
    const floorCpu: number[] = [];
    const floor = async () => {
      await flushAll(hosts);
      const meter = await cpuMeter();
      const r = await timedToKernels(pollers, s.routes, () =>
        floorAnsible({ scratch, inventoryPath: fleet.inventoryPath, dir: floorDir, hosts: names }),
      );
      floorCpu.push((await meter()).ansible);
      await assertKernelCounts(hosts, s.routes);
      log(
        `floor (bare ansible-playbook, ip -batch task): all in the kernels after ${ms(r.kernelMs)}`,
      );
      return r.kernelMs;
    };

    // Untimed: ansible's first start (bytecode caches) and every host's first SSH connection.
    await bareApply({
      scratch,
      inventoryPath: fleet.inventoryPath,
      hostVars: await applyHostVars(
        server,
        new Map(names.map((n) => [n, { proto: PROTO, routes: [] }])),
      ),
    });
    // Untimed: the server reaches every host once (a gather each), as a running server has:
    // convergence touches every managed host each CONVERGE_INTERVAL_S, within
    // SSH_MASTER_IDLE_S, so its SSH masters are open. A first contact is measured at the end.
    await Promise.all(names.map((n) => api(server, 'GET', `/v1/hosts/${n}?refresh=true`)));
    const floorMs = [await floor()];
    await flushAll(hosts);
    const idle = await rssMiB();

    // 1. The API: batch POSTs (one per host unless BENCH_CHUNK says otherwise), all at once,
    // each waiting (default wait) for the run that carries it.
    const items = hosts.flatMap((h) => dests.map((to) => ({ host: h.name, to, dev: 'eth0' })));
    const chunk = s.chunk || s.routes;
    const bodies: (typeof items)[] = [];
    for (let i = 0; i < items.length; i += chunk) bodies.push(items.slice(i, i + chunk));
    const postAll = (to: RunningServer) =>
      Promise.all(
        bodies.map(async (body) => {
          const r = await api<{ items: { route: ApiRoute }[]; counts: Record<string, number> }>(
            to,
            'POST',
            '/v1/routes',
            body,
          );
          return { ...r, at: performance.now() };
        }),
      );
    const runsBefore = await applyRunCount(server);
    const claimTrace = traceClaims(server);
    const peakReset = await resetPeakRss();
    const apiMeter = await cpuMeter();
    let answers: {
      status: number;
      body: { items: { route: ApiRoute }[]; counts: Record<string, number> };
      ms: number;
      at: number;
    }[] = [];
    const apiRun = await timedToKernels(pollers, s.routes, async () => {
      answers = await postAll(server);
    });
    const peak = await rssMiB();
    const apiCpu = await apiMeter();
    const { t0, epoch0 } = apiRun;
    const apiKernelMs = apiRun.kernelMs;
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
    claimTrace.stop();
    const breakdown = await whereTheTimeGoes({
      server,
      hosts,
      epoch0,
      runs,
      trace: claimTrace,
      kernelAt: apiRun.hostAt,
      answersAt: answers.map((a) => a.at - t0),
    });

    // 2. routeplane's own apply playbook run bare on the reconciler's desired files for the
    // same routes (a diagnostic: what the module and its inputs cost over the floor).
    const rendered = await desiredFromServer(server, names);
    const desired = Object.fromEntries(
      [...rendered].map(([h, args]) => [h, args.routes as unknown as ModuleRoute[]]),
    );
    for (const h of names) {
      // The same lines, in whatever order the server lists the routes.
      const lines = desired[h]!.map(addLine).sort();
      if (lines.join('\n') !== [...sameLines].sort().join('\n')) {
        throw new Error(`${h}: the server renders other lines than the floor's file`);
      }
    }
    const moduleCpu: number[] = [];
    const moduleBare = async () => {
      await flushAll(hosts);
      const hostVars = await applyHostVars(server, rendered);
      let exitMs = NaN;
      const meter = await cpuMeter();
      const r = await timedToKernels(pollers, s.routes, async () => {
        const bare = await bareApply({ scratch, inventoryPath: fleet.inventoryPath, hostVars });
        exitMs = bare.ms;
        const added = Object.values(bare.hosts).map(
          (x) => (x.added as unknown[] | undefined)?.length,
        );
        if (added.some((n) => n !== s.routes)) throw new Error(`bare run added ${added.join(',')}`);
      });
      moduleCpu.push((await meter()).ansible);
      await assertKernelCounts(hosts, s.routes);
      // As the API's runs are split below: ansible-playbook's start to the first module start.
      const ws = await moduleWindows(hosts, r.epoch0);
      const starts = ws.map((w) => w.start - r.epoch0);
      log(
        `module bare (apply.yml, bare ansible-playbook): all in the kernels after ${ms(r.kernelMs)}, ` +
          `exited after ${ms(exitMs)}; start-up ${ms(Math.min(...starts))}, modules started ` +
          `${range(starts)}, module per host ${ms(median(ws.map((w) => w.end - w.start)))} (median)`,
      );
      return r.kernelMs;
    };
    const moduleMs = [await moduleBare()];

    // 3. The physical limit: ip -batch of the same files, in each namespace at once.
    await flushAll(hosts);
    const batchMs = await ipBatchFiles(hosts, batchFile);
    await assertKernelCounts(hosts, s.routes);
    log(`ip -batch in ${hosts.length} namespaces at once: ${ms(batchMs)}`);

    // The floor and the module once more, after the API: both sides of the ratio bracket it.
    floorMs.push(await floor());
    moduleMs.push(await moduleBare());
    const floorAvg = mean(floorMs);
    const moduleAvg = mean(moduleMs);

    // The same bulk from a server that has never reached the hosts (its own database and SSH
    // master directory): every host's first run opens its connection. Last, so that the main
    // server's memory figures above are its own.
    await flushAll(hosts);
    const fresh = await benchServer(cleanup, {
      INVENTORY: fleet.inventoryPath,
      BODY_LIMIT: '64mb',
      ROUTE_WAIT_S: '240',
    });
    const firstRun = await timedToKernels(pollers, s.routes, () => postAll(fresh));
    await assertKernelCounts(hosts, s.routes);
    const firstRuns = await applyRunCount(fresh);
    log(
      `API, first contact (a fresh server, no SSH master open): all in the kernels after ` +
        `${ms(firstRun.kernelMs)} with ${firstRuns} apply run(s)`,
    );
    const firstVsFloor = firstRun.kernelMs / floorAvg;

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

    // Same measurement on every side: first poll that sees every kernel complete.
    const vsFloor = apiKernelMs / floorAvg;
    const vsBatch = apiKernelMs / batchMs;
    const moduleVsFloor = moduleAvg / floorAvg;
    const naiveVsApi = naiveExtrapolated / apiKernelMs;
    const per = (x: number) => `${(x / s.routes).toFixed(2)} ms`;
    const each = (xs: number[]) => xs.map((x) => ms(x)).join(', ');
    log('');
    log(breakdown);
    log('');
    log(
      table([
        ['way', `${total} routes in the kernels`, 'per route (all hosts)', 'API / this'],
        ['routeplane API (batch POSTs, wait)', ms(apiKernelMs), per(apiKernelMs), '1.00x'],
        ['  (all answers received)', ms(apiAnswerMs), '', ''],
        [
          'routeplane API, first contact (fresh server)',
          ms(firstRun.kernelMs),
          per(firstRun.kernelMs),
          ratio(apiKernelMs / firstRun.kernelMs),
        ],
        [
          `floor with Ansible: bare ip -batch task (mean of ${each(floorMs)})`,
          ms(floorAvg),
          per(floorAvg),
          ratio(vsFloor),
        ],
        [
          `diagnostic: routeplane's module bare (mean of ${each(moduleMs)})`,
          ms(moduleAvg),
          per(moduleAvg),
          ratio(apiKernelMs / moduleAvg),
        ],
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
    log(`API / floor = ${ratio(vsFloor)} (goal <= 1.30x) with ${apiRuns} apply run(s)`);
    log(
      `API first contact / floor = ${ratio(firstVsFloor)} (a server's first run to each host ` +
        `opens its SSH connection; diagnostic)`,
    );
    log(`API / physical limit = ${ratio(vsBatch)}`);
    log(`module bare / floor = ${ratio(moduleVsFloor)} (diagnostic: the module and its inputs)`);
    // CPU does not depend on what else the machine runs, as wall time does under load.
    const floorCpuAvg = mean(floorCpu);
    log(
      `controller CPU: API ${cpu(apiCpu)} (until every answer); floor ${floorCpuAvg.toFixed(1)} s ` +
        `ansible (mean of ${floorCpu.map((c) => c.toFixed(1)).join(', ')}); module bare ` +
        `${mean(moduleCpu).toFixed(1)} s ansible; API / floor = ` +
        `${ratio((apiCpu.ansible + apiCpu.server) / floorCpuAvg)}, module bare / floor = ` +
        `${ratio(mean(moduleCpu) / floorCpuAvg)}`,
    );
    if (s.naiveRoutes > 0) log(`naive / API = ${ratio(naiveVsApi)}`);
    log(
      `server memory (in this process): ${mib(beforeServer.rss)} before the server started, ` +
        `${mib(idle.rss)} idle after start-up and a warm-up run, peak ${mib(peak.peak)} during ` +
        `the API phase${peakReset ? '' : ' (peak since start: clear_refs refused)'}, ` +
        `${mib(peak.rss)} after it`,
    );
    return {
      name: NAME,
      rows: [
        {
          what: `${s.routes} routes x ${s.hosts} hosts to kernels: API vs the floor with Ansible (ip -batch task)`,
          subject: ms(apiKernelMs),
          baseline: ms(floorAvg),
          ratio: vsFloor,
          goal: '<= 1.30x',
          met: vsFloor <= 1.3,
        },
        {
          what: 'diagnostic: first contact (fresh server, no SSH master) vs the floor',
          subject: ms(firstRun.kernelMs),
          baseline: ms(floorAvg),
          ratio: firstVsFloor,
        },
        {
          what: 'API vs ip -batch in each namespace (physical limit)',
          subject: ms(apiKernelMs),
          baseline: ms(batchMs),
          ratio: vsBatch,
        },
        {
          what: "diagnostic: routeplane's module bare vs the floor",
          subject: ms(moduleAvg),
          baseline: ms(floorAvg),
          ratio: moduleVsFloor,
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
        {
          what: 'server RSS: idle / peak during the API phase (MiB, in-process)',
          subject: mib(peak.peak),
          baseline: mib(idle.rss),
          ratio: peak.peak / idle.rss,
        },
      ],
    };
  });
}

/**
 * When writes committed and when the reconciler claimed hosts, seen from inside the server
 * (which runs in this process): a listener on the work store's commits (as the reconciler's
 * own wake-up), and a wrapper around its claims. Instrumentation only: nothing is changed.
 */
function traceClaims(server: Awaited<ReturnType<typeof benchServer>>) {
  const commits: number[] = [];
  const claims: { at: number; hosts: number }[] = [];
  let on = true;
  server.services.work.onBumpCommitted(() => on && commits.push(Date.now()));
  const claimer = (
    server.services.reconciler as unknown as {
      deps: { claims: { claim: (...a: unknown[]) => Promise<{ hosts: unknown[] }> } };
    }
  ).deps.claims;
  const claim = claimer.claim.bind(claimer);
  claimer.claim = async (...a: unknown[]) => {
    const at = Date.now();
    const lease = await claim(...a);
    if (on && lease.hosts.length > 0) claims.push({ at, hosts: lease.hosts.length });
    return lease;
  };
  return {
    commits,
    claims,
    stop: () => {
      on = false;
      claimer.claim = claim;
    },
  };
}

/**
 * Where the API's time went, from what routeplane keeps: the routes' rows (created_at is the
 * write's transaction start, synced_at when its run's result was recorded), each apply run's
 * created_at (claimed), started_at and finished_at, the module's start and exit on each host
 * (its fence log), the poller's kernel-complete time per host, and the answers. Milliseconds
 * after the first POST.
 */
async function whereTheTimeGoes(opts: {
  server: Awaited<ReturnType<typeof benchServer>>;
  hosts: FleetHost[];
  epoch0: number;
  runs: Awaited<ReturnType<typeof recentApplyRuns>>;
  kernelAt: Map<string, number>;
  answersAt: number[];
  trace: ReturnType<typeof traceClaims>;
}): Promise<string> {
  const at = (d: Date | string | null) => (d === null ? NaN : new Date(d).getTime() - opts.epoch0);
  const rows = (await opts.server.services.db
    .knex('routes')
    .select('host')
    .min({ first: 'created_at' })
    .max({ last: 'created_at', synced: 'synced_at' })
    .groupBy('host')) as { host: string; first: Date; last: Date; synced: Date | null }[];
  const byHost = new Map(rows.map((r) => [r.host, r]));
  const windows = await moduleWindows(opts.hosts, opts.epoch0);
  const lines: string[] = [
    `where the API's time went (ms after the first POST; ${opts.runs.length} apply run(s)):`,
    `  writes: the hosts' write transactions began ${range(rows.map((r) => at(r.first)))}, ` +
      `committed ${range(opts.trace.commits.map((c) => c - opts.epoch0))} (${opts.trace.commits.length} commits)`,
    `  claims (group commit): ` +
      opts.trace.claims.map((c) => `${c.hosts} host(s) at ${ms(c.at - opts.epoch0)}`).join(', '),
  ];
  const table_: string[][] = [
    [
      'run',
      'hosts',
      'its writes began',
      'recorded',
      'since its last write',
      'started',
      'start-up',
      'modules started',
      'module per host (median, max)',
      'kernels complete',
      'modules ended',
      'run finished',
      'wrap-up',
      'synced',
    ],
  ];
  for (const [i, run] of opts.runs.entries()) {
    const mine = (w: ModuleWindow) =>
      run.hosts.includes(w.host) &&
      w.start >= Date.parse(run.started_at ?? run.created_at) &&
      w.end <= Date.parse(run.finished_at ?? run.created_at) + 1000;
    const ws = windows.filter(mine);
    const starts = ws.map((w) => w.start - opts.epoch0);
    const ends = ws.map((w) => w.end - opts.epoch0);
    const durations = ws.map((w) => w.end - w.start);
    const writes = run.hosts.map((h) => at(byHost.get(h)?.last ?? null));
    const kernels = run.hosts.map((h) => opts.kernelAt.get(h) ?? NaN);
    const synced = run.hosts.map((h) => at(byHost.get(h)?.synced ?? null));
    const claimed = at(run.created_at);
    const started = at(run.started_at);
    const finished = at(run.finished_at);
    table_.push([
      String(i + 1),
      String(run.hosts.length),
      range(writes),
      ms(claimed),
      // From the last write the run carries (its transaction's start) to the run's record.
      ms(claimed - Math.max(...writes)),
      ms(started),
      // ansible-playbook's start, inventory and vars, SSH, the module's upload and its start.
      starts.length ? ms(Math.min(...starts) - started) : '-',
      range(starts),
      durations.length ? `${ms(median(durations))}, ${ms(Math.max(...durations))}` : '-',
      range(kernels),
      range(ends),
      ms(finished),
      // ansible's end (results, callback output), parsing them, recording the run.
      ends.length ? ms(finished - Math.max(...ends)) : '-',
      range(synced),
    ]);
  }
  lines.push(table(table_));
  lines.push(`  answers received ${range(opts.answersAt)}`);
  return lines.join('\n');
}

if (isMain(import.meta.url)) runAsScript(routesBulk);
