// Failover: detection and switch. Two labs of 2 + T hosts (default T = 10): in each, h1 is g1
// and h2 is g2, and every other host routes 203.0.113.0/24 via [g1, g2] of its own lab with an
// icmp check (rise 2, fall 2, timeout 0.5 s), the server as in production (FAILOVER_CHECKS and
// WATCH_HOSTS on, warm runner). Once every route is on g1 with both gateways healthy, g1 of both
// labs loses its link at once (the root-namespace end of its veth set down in one `ip -batch`),
// and the benchmark prints, per route:
// - detection: link down until the decision is stored (its transaction committed: a listener on
//   the engine's onEvents, which the engine calls after the commit; the route's
//   last_switch.at, when the engine took the decision, is printed beside it);
// - switch: decision stored until the host's kernel shows g2 (the `ip -ts monitor route` of its
//   namespace: the kernel's event, timed by ip itself);
// in two rounds, at interval_s 1 and 2. Between them g1 comes back and the routes return to it
// (preempt, hold_down_s 0: printed as a diagnostic), and the routes' check is patched to the
// next interval. Goals: detection max at most interval_s x fall + timeout_s + 0.3 s; switch p50
// at most 2x a single-route apply measured in the same run (a plain route POSTed to one target,
// default wait, until its namespace's monitor shows it; samples before each round). For
// context, the floors, run before the server starts on the same targets, same change (the
// route via g1 already there, replaced by one via g2): the physical limit (`ip -batch` with the
// replace in every target's namespace at once) and the naive way (one cold bare
// `ansible-playbook` run with an `ansible.builtin.command: ip route replace ...` task).
import { performance } from 'node:perf_hooks';
import { execa, type ResultPromise } from 'execa';
import { dump } from 'js-yaml';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { labIdOfNetns, vethName } from '../src/lab/naming.ts';
import type { RunningServer } from '../src/server.ts';
import { fileLogger } from './live-latency.ts';
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
  type BenchRow,
  percentile,
} from './lib.ts';
import {
  PROTO,
  api,
  bareAnsible,
  benchFleet,
  flushAll,
  ipBatchAll,
  recentApplyRuns,
  sleep,
  type ApiRun,
  type FleetHost,
} from './routes-lib.ts';

const NAME = 'failover-switch';
const DEADLINE_MS = 290_000;
const PREFIX = '203.0.113.0/24';
const RISE = 2;
const FALL = 2;
const TIMEOUT_S = 0.5;
const INTERVALS = [1, 2];
/** The slack the issue allows on top of interval_s x fall + timeout_s. */
const SLACK_S = 0.3;
const ROUND_TIMEOUT_MS = 45_000;
const READY_TIMEOUT_MS = 60_000;

/** Epoch ms with sub-ms resolution (ip -ts prints wall-clock time with microseconds). */
const epochNow = () => performance.timeOrigin + performance.now();

const secs = (x: number) => `${(x / 1000).toFixed(2)} s`;

interface Target extends FleetHost {
  /** The lab's g1 and g2 (its h1 and h2). */
  g1: string;
  g2: string;
  /** The root-namespace end of its lab's g1 veth. */
  g1Veth: string;
}

/** `[2026-11-23T14:27:33.750867] [Deleted ]203.0.113.0/24 via 198.51.100.2 dev eth0 ...` */
const MONITOR_LINE =
  /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})\]\s+(Deleted\s+)?(\S+)(?:\s+via\s+(\S+))?/;

interface MonitorLine {
  /** ip's own timestamp, epoch ms. */
  at: number;
  deleted: boolean;
  dst: string;
  via: string | null;
}

/** `ip -ts monitor route` in one namespace, every line kept with ip's own timestamp. */
class RouteMonitor {
  readonly lines: MonitorLine[] = [];
  private readonly child: ResultPromise;

  constructor(readonly netns: string) {
    this.child = execa('ip', ['-n', netns, '-ts', 'monitor', 'route'], {
      reject: false,
      stdin: 'ignore',
      buffer: false,
    });
    let rest = '';
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        const m = MONITOR_LINE.exec(line);
        if (!m) continue;
        // No offset in the text: Date reads it as local time, which is how ip printed it.
        const at = new Date(m[1]!).getTime() + Number(m[2]) / 1000;
        const dst = m[4]!.includes('/') ? m[4]! : `${m[4]}/32`;
        this.lines.push({ at, deleted: Boolean(m[3]), dst, via: m[5] ?? null });
      }
    });
  }

  /** The first line at or after `since` matching `pred`: when the kernel had it. */
  first(since: number, pred: (l: MonitorLine) => boolean): number | null {
    return this.lines.find((l) => l.at >= since && pred(l))?.at ?? null;
  }

  async waitFor(
    since: number,
    pred: (l: MonitorLine) => boolean,
    timeoutMs: number,
  ): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const at = this.first(since, pred);
      if (at !== null) return at;
      if (performance.now() > deadline) {
        throw new Error(`${this.netns}: the monitor saw no such route change in ${timeoutMs} ms`);
      }
      await sleep(20);
    }
  }

  async close(): Promise<void> {
    this.child.kill('SIGTERM');
    await this.child;
  }
}

/** Which gateway(s) the namespace's kernel uses for PREFIX right now. */
async function kernelGateway(netns: string): Promise<string | null> {
  const { stdout } = await execa('ip', ['-n', netns, '-j', 'route', 'show', PREFIX]);
  const routes = (stdout.trim() ? JSON.parse(stdout) : []) as { gateway?: string }[];
  return routes.length === 1 ? (routes[0]!.gateway ?? null) : null;
}

interface ApiCandidateRoute {
  id: string;
  host: string;
  active_via: string;
  candidates: { via: string; health: string }[];
  health_check: { interval_s: number }[];
  last_switch: { at: string; from: string; to: string; reason: string } | null;
  sync: { state: string };
}

interface Stat {
  p50: number;
  max: number;
  min: number;
}

const stat = (xs: number[]): Stat => ({
  p50: percentile(xs, 50),
  max: Math.max(...xs),
  min: Math.min(...xs),
});

interface RoundResult {
  intervalS: number;
  boundMs: number;
  /** Link down → decision stored (commit), per route. */
  detection: Stat;
  /** Link down → decision taken (last_switch.at), per route. */
  decided: Stat;
  /** Decision stored → kernel on g2, per route. */
  switched: Stat;
  /** Link down → kernel on g2, per route. */
  total: Stat;
  /** Per route: stored → its apply run created, created → started, started → kernel. */
  toRun: Stat;
  queued: Stat;
  runToKernel: Stat;
  runs: (ApiRun & { queueMs: number; runMs: number })[];
  linkCmdMs: number;
  /** g1 back: link up → the last kernel back on g1 (preempt, hold_down_s 0). */
  returnMs: number;
  singles: number[];
  /** One plain route POSTed to every target in one batch → each kernel. */
  bulk: Stat;
}

async function apiRoutes(server: RunningServer, ids: string[]): Promise<ApiCandidateRoute[]> {
  return Promise.all(
    ids.map(async (id) => {
      const r = await api<ApiCandidateRoute>(server, 'GET', `/v1/routes/${id}`);
      if (r.status !== 200) throw new Error(`GET /v1/routes/${id}: ${r.status}`);
      return r.body;
    }),
  );
}

async function setLinks(veths: string[], up: boolean): Promise<number> {
  const t0 = performance.now();
  await execa('ip', ['-batch', '-'], {
    input: `${veths.map((v) => `link set ${v} ${up ? 'up' : 'down'}`).join('\n')}\n`,
  });
  return performance.now() - t0;
}

export async function failoverSwitch(): Promise<BenchResult> {
  const perLab = envInt('BENCH_TARGETS', 10, 1, 11);
  const reps = envInt('BENCH_REPS', 6, 2, 40);
  log(
    `== ${NAME}: 2 labs x (2 gateways + ${perLab} targets), one gateway of each lab down at once, ` +
      `icmp checks at interval_s ${INTERVALS.join(' and ')}, ${databaseLabel()} ==`,
  );
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    const labSize = perLab + 2;
    const fleet = await benchFleet(cleanup, 2 * labSize, { perLab: labSize });
    const targets: Target[] = [];
    for (let l = 0; l < 2; l++) {
      const labHosts = fleet.hosts.slice(l * labSize, (l + 1) * labSize);
      const [g1, g2] = labHosts;
      const id = labIdOfNetns(g1!.netns)!;
      const n = Number(/-h(\d+)$/.exec(g1!.netns)![1]);
      for (const h of labHosts.slice(2)) {
        targets.push({ ...h, g1: g1!.ipv4, g2: g2!.ipv4, g1Veth: vethName(id, n) });
      }
    }
    const g1Veths = [...new Set(targets.map((t) => t.g1Veth))];
    // Whatever happens, the gateways' links come back up (the labs go down after this).
    cleanup.defer('gateway links up', async () => {
      await setLinks(g1Veths, true).catch(() => undefined);
    });
    const scratch = await tempDir(cleanup, 'fo');
    const monitors = new Map(targets.map((t) => [t.netns, new RouteMonitor(t.netns)]));
    cleanup.defer('route monitors', async () => {
      await Promise.all([...monitors.values()].map((m) => m.close()));
    });
    const mon = (t: Target) => monitors.get(t.netns)!;
    await sleep(300); // the monitors are listening

    // ---- The floors, before the server exists: the same change on the same targets.
    const byNetns = new Map(targets.map((t) => [t.netns, t]));
    const replace = (gw: 'g1' | 'g2') => (h: FleetHost) => [
      `route replace ${PREFIX} via ${byNetns.get(h.netns)![gw]} dev eth0 proto ${PROTO}`,
    ];
    const viaG1 = replace('g1');
    const viaG2 = replace('g2');
    const physical: number[] = [];
    for (let i = 0; i < 3; i++) {
      await ipBatchAll(targets, viaG1);
      physical.push(await ipBatchAll(targets, viaG2));
      for (const t of targets) {
        if ((await kernelGateway(t.netns)) !== t.g2) throw new Error(`${t.name}: not on g2`);
      }
    }
    await ipBatchAll(targets, viaG1);
    const naivePlaybook = path.join(scratch, 'naive.yml');
    await writeFile(
      naivePlaybook,
      dump(
        [
          {
            name: 'The naive way: ip route replace per host',
            hosts: 'all',
            gather_facts: false,
            tasks: [
              {
                name: 'ip route replace',
                'ansible.builtin.command': `ip route replace ${PREFIX} via {{ rp_gw[inventory_hostname] }} dev eth0 proto ${PROTO}`,
              },
            ],
          },
        ],
        { lineWidth: -1 },
      ),
    );
    const naive = await bareAnsible({
      scratch,
      inventoryPath: fleet.inventoryPath,
      hosts: targets.map((t) => t.name),
      extravars: { rp_gw: Object.fromEntries(targets.map((t) => [t.name, t.g2])) },
      playbook: naivePlaybook,
    });
    for (const t of targets) {
      if ((await kernelGateway(t.netns)) !== t.g2) throw new Error(`${t.name}: naive: not on g2`);
    }
    await flushAll(targets);
    log(
      `floors (${targets.length} targets): ip -batch replace in every namespace ${physical.map((x) => x.toFixed(0)).join(' / ')} ms; ` +
        `cold bare ansible-playbook with a command task ${ms(naive.ms)}`,
    );

    // ---- The server, as in production: watching and failover on, warm runner.
    const serverLog = await fileLogger(cleanup);
    const server = await benchServer(
      cleanup,
      { INVENTORY: fleet.inventoryPath, WATCH_HOSTS: 'true', FAILOVER_CHECKS: 'true' },
      { logger: serverLog.logger },
    );
    const engine = server.services.live.failover.engine();
    if (!engine) throw new Error('the failover engine did not start');
    /** Every switch recorded, as the engine tells its listeners after the commit. */
    const stored: { routeId: string; to: string; at: number }[] = [];
    engine.onEvents((events) => {
      const at = epochNow();
      for (const e of events) {
        if (e.outcome.switched) {
          stored.push({ routeId: e.route.id, to: e.outcome.switched.to[0] ?? '', at });
        }
      }
    });

    const healthCheck = (intervalS: number) => ({
      type: 'icmp',
      interval_s: intervalS,
      timeout_s: TIMEOUT_S,
      rise: RISE,
      fall: FALL,
    });
    const created = await api<{ items: { route: ApiCandidateRoute }[] }>(
      server,
      'POST',
      '/v1/routes',
      targets.map((t) => ({
        host: t.name,
        to: PREFIX,
        via: [t.g1, t.g2],
        health_check: healthCheck(INTERVALS[0]!),
        preempt: true,
        hold_down_s: 0,
      })),
    );
    if (created.status !== 201) {
      throw new Error(`POST /v1/routes: ${created.status} ${JSON.stringify(created.body)}`);
    }
    const routeIds = created.body.items.map((i) => i.route.id);
    const targetOf = new Map(created.body.items.map((i, k) => [i.route.id, targets[k]!]));
    const idOf = new Map(created.body.items.map((i, k) => [targets[k]!.name, i.route.id]));

    /** Every route on g1 in the API and its kernel, both gateways healthy at `intervalS`. */
    const waitReady = async (intervalS: number) => {
      const t0 = performance.now();
      for (;;) {
        const routes = await apiRoutes(server, routeIds);
        const notReady = routes.filter((r) => {
          const t = targetOf.get(r.id)!;
          return (
            r.active_via !== t.g1 ||
            r.sync.state !== 'in_sync' ||
            r.health_check[0]?.interval_s !== intervalS ||
            !r.candidates.every((c) => c.health === 'healthy')
          );
        });
        if (notReady.length === 0) {
          const gws = await Promise.all(targets.map((t) => kernelGateway(t.netns)));
          if (targets.every((t, i) => gws[i] === t.g1)) return performance.now() - t0;
        }
        if (performance.now() - t0 > READY_TIMEOUT_MS) {
          throw new Error(
            `not every route on g1 with both gateways healthy after ${READY_TIMEOUT_MS / 1000} s: ` +
              JSON.stringify(notReady.slice(0, 3)),
          );
        }
        await sleep(250);
      }
    };

    // ---- A single-route apply, for comparison: a plain route POSTed to one target.
    let singleNo = 0;
    const single = async (): Promise<number> => {
      const t = targets[singleNo % targets.length]!;
      const dst = `192.0.2.${1 + (singleNo++ % 250)}/32`;
      const t0 = epochNow();
      const r = await api<{ id: string; sync: { state: string } }>(server, 'POST', '/v1/routes', {
        host: t.name,
        to: dst,
        dev: 'eth0',
      });
      if (r.status !== 201 || r.body.sync.state !== 'in_sync') {
        throw new Error(`POST /v1/routes: ${r.status} ${JSON.stringify(r.body)}`);
      }
      const at = await mon(t).waitFor(t0, (l) => !l.deleted && l.dst === dst, 10_000);
      // Untimed: out again, so that each sample applies one route to a host holding its
      // candidate route only.
      const del = await api(server, 'DELETE', `/v1/routes/${r.body.id}`);
      if (del.status !== 200) throw new Error(`DELETE: ${del.status} ${JSON.stringify(del.body)}`);
      return at - t0;
    };

    // ---- The same number of hosts through one apply, for context: a plain route POSTed to
    // every target in one batch, until each namespace's monitor shows it.
    let bulkNo = 0;
    const bulk = async (): Promise<number[]> => {
      const dst = `192.0.2.${251 + (bulkNo++ % 4)}/32`;
      const t0 = epochNow();
      const r = await api<{ items: { route: { id: string; sync: { state: string } } }[] }>(
        server,
        'POST',
        '/v1/routes',
        targets.map((t) => ({ host: t.name, to: dst, dev: 'eth0' })),
      );
      if (r.status !== 201 || r.body.items.some((i) => i.route.sync.state !== 'in_sync')) {
        throw new Error(`POST /v1/routes (bulk): ${r.status} ${JSON.stringify(r.body)}`);
      }
      const ats = await Promise.all(
        targets.map((t) => mon(t).waitFor(t0, (l) => !l.deleted && l.dst === dst, 20_000)),
      );
      await Promise.all(
        r.body.items.map(async (i) => {
          const del = await api(server, 'DELETE', `/v1/routes/${i.route.id}`);
          if (del.status !== 200) throw new Error(`DELETE: ${del.status}`);
        }),
      );
      return ats.map((at) => at - t0);
    };

    const round = async (intervalS: number): Promise<RoundResult> => {
      const readyMs = await waitReady(intervalS);
      log(
        `interval_s ${intervalS}: every route on g1, both gateways healthy (${secs(readyMs)} of waiting)`,
      );
      const singles: number[] = [];
      // One untimed (the first after the routes were created or patched), then the samples.
      await single();
      for (let i = 0; i < Math.ceil(reps / INTERVALS.length); i++) singles.push(await single());
      const bulkMs = await bulk();
      // Let the probers' schedules run free of the applies just made.
      await sleep(2 * intervalS * 1000);

      const firstStored = stored.length;
      const runsBefore = (
        await api<{ total: number }>(server, 'GET', '/v1/runs?kind=apply&limit=1')
      ).body.total;
      const tDown = epochNow();
      const linkCmdMs = await setLinks(g1Veths, false);
      const t0 = performance.now();
      // Every route's switch stored and every kernel on g2.
      for (;;) {
        const mine = stored.slice(firstStored);
        const done = targets.every(
          (t) =>
            mine.some((s) => s.routeId === idOf.get(t.name) && s.to === t.g2) &&
            mon(t).first(tDown, (l) => !l.deleted && l.dst === PREFIX && l.via === t.g2) !== null,
        );
        if (done) break;
        if (performance.now() - t0 > ROUND_TIMEOUT_MS) {
          const late = targets.filter(
            (t) => !mine.some((s) => s.routeId === idOf.get(t.name) && s.to === t.g2),
          );
          throw new Error(
            `interval_s ${intervalS}: after ${ROUND_TIMEOUT_MS / 1000} s, ${late.length} switches not stored ` +
              `(${late.map((t) => t.name).join(', ')}); or a kernel not on g2`,
          );
        }
        await sleep(50);
      }
      const mine = stored.slice(firstStored);
      const routes = await apiRoutes(server, routeIds);
      const runsAfter = (await api<{ total: number }>(server, 'GET', '/v1/runs?kind=apply&limit=1'))
        .body.total;
      const runs = (await recentApplyRuns(server, Math.max(1, runsAfter - runsBefore))).filter(
        (r) => Date.parse(r.created_at) >= tDown - 5,
      );

      const per = targets.map((t) => {
        const id = idOf.get(t.name)!;
        const storedAt = mine.find((s) => s.routeId === id && s.to === t.g2)!.at;
        const kernelAt = mon(t).first(
          tDown,
          (l) => !l.deleted && l.dst === PREFIX && l.via === t.g2,
        )!;
        const r = routes.find((x) => x.id === id)!;
        if (
          !r.last_switch ||
          r.last_switch.to !== t.g2 ||
          r.last_switch.reason !== 'gateway_failed'
        ) {
          throw new Error(`${t.name}: last_switch ${JSON.stringify(r.last_switch)}`);
        }
        const decidedAt = Date.parse(r.last_switch.at);
        // The run that carried the host: the first one created for it once the switch was stored
        // (run times are the database's, to the millisecond).
        const run = runs.find(
          (x) => x.hosts.includes(t.name) && Date.parse(x.created_at) >= storedAt - 5,
        );
        return { t, storedAt, kernelAt, decidedAt, run };
      });
      const missingRun = per.filter((p) => !p.run).map((p) => p.t.name);
      if (missingRun.length > 0) log(`(no apply run found for ${missingRun.join(', ')})`);
      const withRun = per.filter((p) => p.run);

      // g1 back: the routes return to it (preempt, hold_down_s 0) once it has passed `rise`.
      const tUp = epochNow();
      await setLinks(g1Veths, true);
      const back = await Promise.all(
        targets.map((t) =>
          mon(t).waitFor(
            tUp,
            (l) => !l.deleted && l.dst === PREFIX && l.via === t.g1,
            ROUND_TIMEOUT_MS,
          ),
        ),
      );
      return {
        intervalS,
        boundMs: (intervalS * FALL + TIMEOUT_S + SLACK_S) * 1000,
        detection: stat(per.map((p) => p.storedAt - tDown)),
        decided: stat(per.map((p) => p.decidedAt - tDown)),
        switched: stat(per.map((p) => p.kernelAt - p.storedAt)),
        total: stat(per.map((p) => p.kernelAt - tDown)),
        toRun: stat(withRun.map((p) => Date.parse(p.run!.created_at) - p.storedAt)),
        queued: stat(withRun.map((p) => p.run!.queueMs)),
        runToKernel: stat(withRun.map((p) => p.kernelAt - Date.parse(p.run!.started_at!))),
        runs,
        linkCmdMs,
        returnMs: Math.max(...back) - tUp,
        singles,
        bulk: stat(bulkMs),
      };
    };

    const results: RoundResult[] = [];
    for (const [i, intervalS] of INTERVALS.entries()) {
      if (i > 0) {
        // The next interval: the routes' check patched (new probes, health unknown until rise).
        for (const id of routeIds) {
          const r = await api(server, 'PATCH', `/v1/routes/${id}`, {
            health_check: healthCheck(intervalS),
          });
          if (r.status !== 200) throw new Error(`PATCH: ${r.status} ${JSON.stringify(r.body)}`);
        }
      }
      const r = await round(intervalS);
      results.push(r);
      log(
        `interval_s ${intervalS}: detection p50 ${ms(r.detection.p50)} max ${ms(r.detection.max)} ` +
          `(bound ${ms(r.boundMs)}); switch p50 ${ms(r.switched.p50)} max ${ms(r.switched.max)}; ` +
          `${r.runs.length} apply runs; back on g1 ${secs(r.returnMs)} after the link came up`,
      );
    }

    // ---- The figures.
    const allSingles = results.flatMap((r) => r.singles);
    const singleP50 = median(allSingles);
    const physicalMs = median(physical);
    log('');
    log(
      `Per route (${targets.length} routes, ${targets.length / 2} per lab), link down at t = 0 (the ip command took ` +
        `${results.map((r) => ms(r.linkCmdMs)).join(' / ')}):`,
    );
    const row = (label: string, s: Stat, note = '') => [
      label,
      ms(s.p50),
      ms(s.max),
      ms(s.min),
      note,
    ];
    log(
      table([
        ['interval_s', 'phase', 'p50', 'max', 'min', ''],
        ...results.flatMap((r) => [
          [
            String(r.intervalS),
            ...row(
              'detection: link down -> decision stored',
              r.detection,
              `bound ${ms(r.boundMs)}: max ${ratio(r.detection.max / r.boundMs)}`,
            ),
          ],
          ['', ...row('  (link down -> decision taken, last_switch.at)', r.decided)],
          [
            '',
            ...row(
              'switch: decision stored -> kernel on g2',
              r.switched,
              `p50 / single apply ${ratio(r.switched.p50 / singleP50)}`,
            ),
          ],
          ['', ...row('  stored -> its apply run created', r.toRun)],
          ['', ...row('  run created -> started', r.queued)],
          ['', ...row('  run started -> kernel', r.runToKernel)],
          ['', ...row('link down -> kernel on g2', r.total)],
          [
            '',
            ...row(
              `(context: a plain route to all ${targets.length} in one POST -> kernel)`,
              r.bulk,
              `switch p50 / this p50 ${ratio(r.switched.p50 / r.bulk.p50)}`,
            ),
          ],
        ]),
      ]),
    );
    log('');
    for (const r of results) {
      log(
        `interval_s ${r.intervalS}: apply runs carrying the switch: ${r.runs
          .map(
            (x) =>
              `${x.hosts.length} hosts (queued ${ms(x.queueMs)}, ${x.finished_at ? `ran ${ms(x.runMs)}` : 'still running'})`,
          )
          .join('; ')}`,
      );
    }
    log('');
    log(
      table([
        ['way', 'time', 'samples (ms)'],
        [
          'single-route apply: POST (wait) -> kernel',
          `p50 ${ms(singleP50)}`,
          allSingles.map((x) => x.toFixed(0)).join(' '),
        ],
        [
          `physical limit: ip -batch replace in ${targets.length} namespaces at once`,
          ms(physicalMs),
          physical.map((x) => x.toFixed(0)).join(' '),
        ],
        [
          `naive: cold bare ansible-playbook, command task, ${targets.length} hosts`,
          ms(naive.ms),
          naive.ms.toFixed(0),
        ],
      ]),
    );
    log('');
    log(await serverLog.summary());
    log('');
    const rows: BenchRow[] = [];
    for (const r of results) {
      const det = r.detection.max / r.boundMs;
      const sw = r.switched.p50 / (2 * singleP50);
      log(
        `interval_s ${r.intervalS}: detection max / (interval_s x fall + timeout_s + 0.3 s) = ${ratio(det)} (goal <= 1.00x); ` +
          `switch p50 / single-route apply p50 = ${ratio(r.switched.p50 / singleP50)} (goal <= 2.00x); ` +
          `link down -> kernel max / naive cold run = ${ratio(r.total.max / naive.ms)}; ` +
          `switch p50 / physical limit = ${ratio(r.switched.p50 / physicalMs)}`,
      );
      rows.push(
        {
          what: `detection max, interval_s ${r.intervalS}, ${targets.length} routes, vs ${r.intervalS} x ${FALL} + ${TIMEOUT_S} + ${SLACK_S} s`,
          subject: ms(r.detection.max),
          baseline: ms(r.boundMs),
          ratio: det,
          goal: '<= 1.00x',
          met: det <= 1,
        },
        {
          what: `switch p50 (stored -> kernel), interval_s ${r.intervalS}, vs single-route apply p50`,
          subject: ms(r.switched.p50),
          baseline: ms(singleP50),
          ratio: r.switched.p50 / singleP50,
          goal: '<= 2.00x',
          met: sw <= 1,
        },
      );
    }
    const worst = Math.max(...results.map((r) => r.switched.p50));
    rows.push({
      what: `switch p50 vs ip -batch replace in ${targets.length} namespaces (physical limit)`,
      subject: ms(worst),
      baseline: ms(physicalMs),
      ratio: worst / physicalMs,
      goal: '-',
      met: true,
    });
    const worstTotal = Math.max(...results.map((r) => r.total.max));
    rows.push({
      what: `link down -> last kernel on g2 vs one cold naive ansible-playbook run`,
      subject: ms(worstTotal),
      baseline: ms(naive.ms),
      ratio: worstTotal / naive.ms,
      goal: '-',
      met: true,
    });
    return { name: NAME, rows };
  });
}

if (isMain(import.meta.url)) runAsScript(failoverSwitch);
