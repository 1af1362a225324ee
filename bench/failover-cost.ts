// Failover: what the checks cost in steady state. One lab of 2 gateways (h1, h2) and T targets
// (default 11: as many as a lab holds), 5 routes on each target (203.0.113.0/28, .16/28, ...,
// .64/28), each via both gateways (alternately [g1, g2] and [g2, g1]) with the same icmp check
// every second (timeout 0.5 s). Once every route is in its kernel with both gateways healthy
// (and BENCH_SETTLE_S more), nothing changes for BENCH_STEADY_S (default 60) and the benchmark
// reads the CPU time spent meanwhile (/proc/<pid>/stat: utime + stime), as % of one core:
// - the controller (goal: under 10% of one core): the server's process (in-process here:
//   process.cpuUsage, every thread, less the benchmark's own reading of /proc, which it times),
//   its ssh children (the probers' sessions), any other process of its tree, and the runner's
//   SSH masters the sessions ride (detached from the tree: found by their ControlPath dir);
// - the probers (goal: under 10% of one core, all together): the python processes running
//   routeplane_probe in the lab's namespaces (found as `ip netns pids` does, their command
//   line naming `routeplane-probe`); the sshd processes carrying them, separately.
// The checks dedupe: routes of one host asking the same check of the same gateway share one
// probe, so the probes sent per second (the server's routeplane_probe_results_total) are one
// per gateway per target per interval, not one per route; both are printed.
// WATCH_HOSTS is off, so that the figures are the checks' own (watch-cpu measures watching).
import { performance } from 'node:perf_hooks';
import { pidsMentioning } from '../src/runs/process-reaper.ts';
import {
  benchServer,
  databaseLabel,
  envInt,
  isMain,
  log,
  ratio,
  runAsScript,
  table,
  withCleanup,
  type BenchResult,
} from './lib.ts';
import { api, benchFleet, kernelCount, sleep } from './routes-lib.ts';
import { descendants, netnsPids, procCpu, type ProcCpu } from './proc-cpu.ts';

const NAME = 'failover-cost';
const DEADLINE_MS = 290_000;
const ROUTES_PER_HOST = 5;
const INTERVAL_S = 1;
const TIMEOUT_S = 0.5;
/** `routeplane-probe` is the name the bootstrap compiles the prober under (watch-connection.ts). */
const PROBE_MARK = 'routeplane-probe';
const GOAL_PCT = 10;
const READY_TIMEOUT_MS = 90_000;

/**
 * A set of processes read at the start and the end of the window: one alive at the end counts
 * its own and its waited-for children's time since the start (all of it if it started within
 * the window); one that ended counts only through its parent's children time.
 */
class Window {
  private readonly first = new Map<number, ProcCpu>();
  private readonly last = new Map<number, ProcCpu>();

  async start(pids: number[]): Promise<void> {
    for (const p of await Promise.all(pids.map(procCpu))) if (p) this.first.set(p.pid, p);
  }

  async end(pids: number[]): Promise<void> {
    for (const p of await Promise.all(pids.map(procCpu))) if (p) this.last.set(p.pid, p);
  }

  spent(): { pid: number; cmd: string; own: number; children: number }[] {
    return [...this.last.values()].map((l) => {
      const f = this.first.get(l.pid);
      return {
        pid: l.pid,
        cmd: l.cmd,
        own: l.own - (f?.own ?? 0),
        children: l.children - (f?.children ?? 0),
      };
    });
  }
}

const pct = (seconds: number, wallS: number) => `${((100 * seconds) / wallS).toFixed(2)}%`;
const secs = (s: number) => `${s.toFixed(2)} s`;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

interface ApiCandidateRoute {
  id: string;
  candidates: { via: string; health: string }[];
  sync: { state: string };
}

export async function failoverCost(): Promise<BenchResult> {
  const targetCount = envInt('BENCH_TARGETS', 11, 1, 11);
  const steadyS = envInt('BENCH_STEADY_S', 60, 10, 200);
  const settleS = envInt('BENCH_SETTLE_S', 5, 0, 60);
  const routeCount = targetCount * ROUTES_PER_HOST;
  log(
    `== ${NAME}: ${targetCount} targets x ${ROUTES_PER_HOST} routes over 2 gateways, icmp every ` +
      `${INTERVAL_S} s, ${steadyS} s steady, ${databaseLabel()} ==`,
  );
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    const fleet = await benchFleet(cleanup, targetCount + 2);
    const [g1, g2, ...targets] = fleet.hosts;
    const server = await benchServer(cleanup, {
      INVENTORY: fleet.inventoryPath,
      FAILOVER_CHECKS: 'true',
      WATCH_HOSTS: 'false',
    });
    const metrics = server.services.metrics;
    const counter = async (c: { get(): Promise<{ values: { value: number }[] }> }) =>
      sum((await c.get()).values.map((v) => v.value));

    const body = targets.flatMap((t) =>
      Array.from({ length: ROUTES_PER_HOST }, (_, k) => ({
        host: t.name,
        to: `203.0.113.${16 * k}/28`,
        via: k % 2 === 0 ? [g1!.ipv4, g2!.ipv4] : [g2!.ipv4, g1!.ipv4],
        health_check: { type: 'icmp', interval_s: INTERVAL_S, timeout_s: TIMEOUT_S },
      })),
    );
    const created = await api<{ items: { route: { id: string } }[] }>(
      server,
      'POST',
      '/v1/routes',
      body,
    );
    if (created.status !== 201) {
      throw new Error(`POST /v1/routes: ${created.status} ${JSON.stringify(created.body)}`);
    }
    const ids = created.body.items.map((i) => i.route.id);

    // Every route in sync and in its kernel, both gateways healthy as every route sees them.
    const t0 = performance.now();
    for (;;) {
      const routes = await Promise.all(
        ids.map(
          async (id) => (await api<ApiCandidateRoute>(server, 'GET', `/v1/routes/${id}`)).body,
        ),
      );
      const notReady = routes.filter(
        (r) => r.sync.state !== 'in_sync' || !r.candidates.every((c) => c.health === 'healthy'),
      );
      if (notReady.length === 0) {
        const counts = await Promise.all(targets.map((t) => kernelCount(t.netns)));
        if (counts.every((n) => n === ROUTES_PER_HOST)) break;
      }
      if (performance.now() - t0 > READY_TIMEOUT_MS) {
        throw new Error(
          `not ready after ${READY_TIMEOUT_MS / 1000} s: ${JSON.stringify(notReady.slice(0, 2))}`,
        );
      }
      await sleep(500);
    }
    log(
      `${routeCount} routes in their kernels, both gateways healthy, ${((performance.now() - t0) / 1000).toFixed(1)} s after the POST; settling ${settleS} s`,
    );
    await sleep(settleS * 1000);

    const mastersDir = await server.services.runner.mastersDir?.();
    const netns = fleet.hosts.map((h) => h.netns);
    const tree = new Window();
    const masters = new Window();
    const hosts = new Window();
    const mastersOf = async (mine: Set<number>) =>
      mastersDir ? (await pidsMentioning(mastersDir)).filter((p) => !mine.has(p)) : [];
    const readAll = async (w: 'start' | 'end') => {
      const mine = await descendants(process.pid);
      await Promise.all([
        tree[w](mine),
        masters[w](await mastersOf(new Set(mine))),
        hosts[w]([...(await netnsPids(netns)).values()].flat()),
      ]);
    };

    // The window: read at its start and its end only; this process sleeps in between.
    const c0 = process.cpuUsage();
    await readAll('start');
    const r0 = process.cpuUsage(c0);
    let readingUs = r0.user + r0.system;
    const selfBefore = (await procCpu(process.pid))!;
    const probesBefore = await counter(metrics.probeResults);
    const healthBefore = await counter(metrics.gatewayHealthChanges);
    const switchesBefore = await counter(metrics.failoverSwitches);
    const cpuBefore = process.cpuUsage();
    const wallStart = performance.now();
    await sleep(steadyS * 1000);
    const cpu = process.cpuUsage(cpuBefore);
    const wallS = (performance.now() - wallStart) / 1000;
    const probes = (await counter(metrics.probeResults)) - probesBefore;
    const healthChanges = (await counter(metrics.gatewayHealthChanges)) - healthBefore;
    const switches = (await counter(metrics.failoverSwitches)) - switchesBefore;
    const selfAfter = (await procCpu(process.pid))!;
    const c1 = process.cpuUsage();
    await readAll('end');
    const c = process.cpuUsage(c1);
    readingUs += c.user + c.system;

    // The controller.
    const serverS = (cpu.user + cpu.system) / 1e6;
    const reapedS = selfAfter.children - selfBefore.children;
    const kids = tree.spent();
    // A ControlPersist master renames itself `ssh: <ControlPath> [mux]`.
    const isMaster = (cmd: string) =>
      /^ssh: /.test(cmd) ||
      (mastersDir !== null &&
        mastersDir !== undefined &&
        cmd.includes(mastersDir) &&
        !cmd.includes(PROBE_MARK));
    const isSsh = (cmd: string) => /^(\S*\/)?ssh /.test(cmd) && !isMaster(cmd);
    // tsx's esbuild service runs the benchmark's TypeScript: not the server's, not counted.
    const isTooling = (cmd: string) => /(^|\/)esbuild /.test(cmd);
    const sshKids = kids.filter((k) => isSsh(k.cmd));
    const probeSsh = sshKids.filter((k) => k.cmd.includes(PROBE_MARK));
    const otherSsh = sshKids.filter((k) => !k.cmd.includes(PROBE_MARK));
    const others = kids.filter((k) => !isSsh(k.cmd) && !isMaster(k.cmd) && !isTooling(k.cmd));
    const tooling = kids.filter((k) => isTooling(k.cmd));
    const probeSshS = sum(probeSsh.map((k) => k.own + k.children));
    const otherSshS = sum(otherSsh.map((k) => k.own + k.children));
    const othersS = sum(others.map((k) => k.own + k.children)) + reapedS;
    const masterList = [...kids.filter((k) => isMaster(k.cmd)), ...masters.spent()];
    const mastersS = sum(masterList.map((k) => k.own + k.children));
    const controllerS = serverS + probeSshS + otherSshS + othersS + mastersS;
    const controllerPct = (100 * controllerS) / wallS;

    // The hosts: the probers, and the sshd processes carrying their sessions.
    const inNs = hosts.spent();
    const probers = inNs.filter((p) => p.cmd.includes(PROBE_MARK) && /python/.test(p.cmd));
    const proberS = sum(probers.map((p) => p.own + p.children));
    const sshd = inNs.filter((p) => /sshd/.test(p.cmd));
    const sshdS = sum(sshd.map((p) => p.own + p.children));
    const restNs = inNs.filter((p) => !probers.includes(p) && !sshd.includes(p));
    const restNsS = sum(restNs.map((p) => p.own + p.children));
    const proberPct = (100 * proberS) / wallS;

    const probesPerS = probes / wallS;
    const perGatewayPerHost = (2 * targetCount) / INTERVAL_S;
    const perRoute = (2 * routeCount) / INTERVAL_S;

    log('');
    log(
      `Steady ${wallS.toFixed(1)} s: ${targetCount} targets, ${routeCount} candidate routes, icmp every ${INTERVAL_S} s:`,
    );
    log(
      table([
        ['side', 'what', 'CPU', '% of one core'],
        ['controller', 'server process (node, all threads)', secs(serverS), pct(serverS, wallS)],
        ['', `probers' ssh clients (${probeSsh.length})`, secs(probeSshS), pct(probeSshS, wallS)],
        ...(otherSsh.length > 0
          ? [
              [
                '',
                `other ssh children (${otherSsh.length})`,
                secs(otherSshS),
                pct(otherSshS, wallS),
              ],
            ]
          : []),
        ...others.map((o) => [
          '',
          `other child: ${o.cmd.slice(0, 60)}`,
          secs(o.own + o.children),
          pct(o.own + o.children, wallS),
        ]),
        ['', 'children that ended (reaped by this process)', secs(reapedS), pct(reapedS, wallS)],
        [
          '',
          `the runner's SSH masters the sessions ride (${masterList.length})`,
          secs(mastersS),
          pct(mastersS, wallS),
        ],
        ['', 'total', secs(controllerS), pct(controllerS, wallS)],
        [
          'hosts',
          `probers: routeplane_probe python (${probers.length})`,
          secs(proberS),
          pct(proberS, wallS),
        ],
        ['', `sshd in the namespaces (${sshd.length})`, secs(sshdS), pct(sshdS, wallS)],
        ...(restNs.length > 0
          ? [['', `other (${restNs.length})`, secs(restNsS), pct(restNsS, wallS)]]
          : []),
      ]),
    );
    log(
      `not counted: tsx's esbuild service ${secs(sum(tooling.map((k) => k.own + k.children)))}; ` +
        `the benchmark's reading of /proc, ${(readingUs / 1e6).toFixed(2)} s, falls outside the window`,
    );
    log(
      `probes: ${probes} results in ${wallS.toFixed(1)} s = ${probesPerS.toFixed(1)}/s ` +
        `(one per gateway per target: ${perGatewayPerHost}/s; one per route and gateway would be ${perRoute}/s); ` +
        `${healthChanges} gateway health changes and ${switches} switches meanwhile`,
    );
    log(
      `per probe: controller ${((controllerS / probes) * 1e6).toFixed(0)} µs, prober ${((proberS / probes) * 1e6).toFixed(0)} µs of CPU`,
    );
    log('');
    log(
      `controller CPU / ${GOAL_PCT}% of one core = ${ratio(controllerPct / GOAL_PCT)} (goal < 1.00x); ` +
        `probers / ${GOAL_PCT}% = ${ratio(proberPct / GOAL_PCT)} (goal < 1.00x)`,
    );
    return {
      name: NAME,
      rows: [
        {
          what: `controller CPU (server + ssh), ${routeCount} routes on ${targetCount} hosts, icmp 1 s, vs 10% of a core`,
          subject: pct(controllerS, wallS),
          baseline: `${GOAL_PCT}.00%`,
          ratio: controllerPct / GOAL_PCT,
          goal: '< 1.00x',
          met: controllerPct < GOAL_PCT,
        },
        {
          what: `all ${probers.length} probers' CPU (python on the hosts) vs 10% of a core`,
          subject: pct(proberS, wallS),
          baseline: `${GOAL_PCT}.00%`,
          ratio: proberPct / GOAL_PCT,
          goal: '< 1.00x',
          met: proberPct < GOAL_PCT,
        },
        {
          what: `probes sent per second vs one per route and gateway (dedupe)`,
          subject: `${probesPerS.toFixed(1)}/s`,
          baseline: `${perRoute}/s`,
          ratio: probesPerS / perRoute,
          goal: '-',
          met: true,
        },
      ],
    };
  });
}

if (isMain(import.meta.url)) runAsScript(failoverCost);
