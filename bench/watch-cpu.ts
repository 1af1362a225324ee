// Watch CPU: what watching H idle lab hosts (default 20) costs, with STATE_RESYNC_S at its
// default (60 s: a full re-read of every host each minute, whatever its monitors say). Once every
// watcher is connected and its first reads have settled, nothing changes for BENCH_IDLE_S
// (default 120) and the benchmark reads the CPU time spent meanwhile:
// - the controller: the server's process (in-process here: process.cpuUsage, every thread), the
//   watchers' ssh clients and any other process of its tree (/proc/<pid>/stat of each);
//   goal: at most 5% of one core;
// - the hosts' side, separately: every process in each lab namespace (sshd, the watch script's
//   python, the re-reads it ran, the `ip monitor` / `nft monitor` triggers);
// - the server's Postgres backends (pg_stat_activity of its database), separately.
// Also counts the topic messages published while idle (a re-read that found nothing new should
// send nothing) and samples the server's CPU every 10 s to show the resync's beat.
import { performance } from 'node:perf_hooks';
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
import { benchFleet, sleep, type FleetHost } from './routes-lib.ts';
import { descendants, netnsPids, procCpu, type ProcCpu } from './proc-cpu.ts';

const NAME = 'watch-cpu';
const DEADLINE_MS = 290_000;
const SAMPLE_MS = 5_000;
/** `routeplane-watch` is the name the bootstrap compiles the script under (watch-connection.ts). */
const WATCH_MARK = 'routeplane-watch';

/**
 * CPU per process across a window, from samples: a process alive at the end counts its own and
 * its waited-for children's time since its first sample (0 if it started within the window);
 * one that ended counts only through its parent's children time, or, with `keepEnded` (a parent
 * that is not tracked, like Postgres's postmaster), its last sample.
 */
class Tracker {
  private readonly first = new Map<number, ProcCpu & { baseline: boolean }>();
  private readonly last = new Map<number, ProcCpu>();
  private alive = new Set<number>();
  private samples = 0;

  constructor(private readonly keepEnded = false) {}

  async sample(pids: number[]): Promise<void> {
    const now = (await Promise.all(pids.map(procCpu))).filter((p): p is ProcCpu => p !== null);
    this.alive = new Set(now.map((p) => p.pid));
    for (const p of now) {
      if (!this.first.has(p.pid)) this.first.set(p.pid, { ...p, baseline: this.samples === 0 });
      this.last.set(p.pid, p);
    }
    this.samples++;
  }

  /** Per process: seconds spent in the window (own, children), with its command line. */
  spent(): { pid: number; cmd: string; own: number; children: number }[] {
    const out: { pid: number; cmd: string; own: number; children: number }[] = [];
    for (const [pid, last] of this.last) {
      if (!this.alive.has(pid) && !this.keepEnded) continue;
      const first = this.first.get(pid)!;
      out.push({
        pid,
        cmd: last.cmd,
        own: last.own - (first.baseline ? first.own : 0),
        children: last.children - (first.baseline ? first.children : 0),
      });
    }
    return out;
  }
}

const pct = (seconds: number, wallS: number) => `${((100 * seconds) / wallS).toFixed(2)}%`;
const secs = (s: number) => `${s.toFixed(2)} s`;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

export async function watchCpu(): Promise<BenchResult> {
  const hostCount = envInt('BENCH_HOSTS', 20, 1, 60);
  const idleS = envInt('BENCH_IDLE_S', 120, 5, 240);
  const settleS = envInt('BENCH_SETTLE_S', 10, 0, 120);
  log(
    `== ${NAME}: CPU of watching ${hostCount} idle hosts for ${idleS} s (STATE_RESYNC_S default), ${databaseLabel()} ==`,
  );
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    const fleet = await benchFleet(cleanup, hostCount);
    const hosts: FleetHost[] = fleet.hosts;
    const t0 = performance.now();
    const server = await benchServer(cleanup, {
      INVENTORY: fleet.inventoryPath,
      WATCH_HOSTS: 'true',
    });
    const { log: topics, watching } = server.services.live;
    const knex = server.services.db.knex;
    // As the server resolved it (HostWatching's own config; the default when unset).
    const resyncS =
      ((watching as unknown as { config?: { stateResyncMs?: number } }).config?.stateResyncMs ??
        60_000) / 1000;

    // Every host watched (its `host` object says so) and its first state read in.
    for (;;) {
      const states = await Promise.all(
        hosts.map(async (h) => {
          const host = (await topics.get(`hosts/${h.name}`, 'host')) as
            { watch?: { state?: string } } | undefined;
          return (
            host?.watch?.state === 'watching' &&
            (await topics.get(`hosts/${h.name}`, 'link/eth0')) !== undefined
          );
        }),
      );
      if (states.every(Boolean)) break;
      if (performance.now() - t0 > 120_000) {
        const not = hosts.filter((_, i) => !states[i]).map((h) => h.name);
        throw new Error(`not watched after 120 s: ${not.join(', ')}`);
      }
      await sleep(250);
    }
    log(
      `${watching.watching.length} hosts watched, every first state in, ${((performance.now() - t0) / 1000).toFixed(1)} s after start; settling ${settleS} s`,
    );
    await sleep(settleS * 1000);

    // The processes: this process's tree, each namespace's, the database's backends.
    const dbName = server.services.db.url
      ? new URL(server.services.db.url).pathname.slice(1)
      : null;
    const pgPids = async (): Promise<number[]> => {
      if (!dbName) return [];
      const r = await knex.raw('select pid from pg_stat_activity where datname = ?', [dbName]);
      return (r.rows as { pid: number }[]).map((x) => x.pid);
    };
    const tree = new Tracker();
    const nsTrackers = new Map(hosts.map((h) => [h.netns, new Tracker()]));
    const pg = new Tracker(true);
    const seqs = async () =>
      new Map(
        (
          (await knex('live_topics').select('topic', 'seq')) as { topic: string; seq: number }[]
        ).map((r) => [r.topic, Number(r.seq)]),
      );
    // This process's tree and the namespaces are read at the start and the end only: what ends
    // in between is counted in its parent's children time. Postgres backends (whose parent,
    // the postmaster, is not tracked) are sampled every few seconds: the pool closes idle ones.
    const sampleAll = async (all: boolean) => {
      const jobs = [pg.sample(await pgPids())];
      if (all) {
        const ns = await netnsPids(hosts.map((h) => h.netns));
        jobs.push(tree.sample(await descendants(process.pid)));
        for (const [name, pids] of ns) jobs.push(nsTrackers.get(name)!.sample(pids));
      }
      await Promise.all(jobs);
    };

    const seqBefore = await seqs();
    await sampleAll(true);
    const selfBefore = (await procCpu(process.pid))!;
    const cpuBefore = process.cpuUsage();
    const wallStart = performance.now();
    const timeline: number[] = [];
    let mark = process.cpuUsage();
    let nextTick = wallStart + 10_000;
    const end = wallStart + idleS * 1000;
    // Sampling costs this process some CPU too (reading /proc, `ip netns pids`, one query):
    // it is timed and taken off the server's figure.
    let samplingCpuUs = 0;
    while (performance.now() < end) {
      await sleep(Math.min(SAMPLE_MS, end - performance.now(), nextTick - performance.now()));
      if (performance.now() >= nextTick) {
        const d = process.cpuUsage(mark);
        mark = process.cpuUsage();
        timeline.push((d.user + d.system) / 1e4 / 10); // % of one core over 10 s
        nextTick += 10_000;
      }
      if (performance.now() < end) {
        const c0 = process.cpuUsage();
        await sampleAll(false);
        const c = process.cpuUsage(c0);
        samplingCpuUs += c.user + c.system;
      }
    }
    const cpu = process.cpuUsage(cpuBefore);
    const wallS = (performance.now() - wallStart) / 1000;
    const selfAfter = (await procCpu(process.pid))!;
    {
      const c0 = process.cpuUsage();
      await sampleAll(true);
      const c = process.cpuUsage(c0);
      samplingCpuUs += c.user + c.system;
    }
    const seqAfter = await seqs();

    // The controller.
    const serverS = (cpu.user + cpu.system) / 1e6 - samplingCpuUs / 1e6;
    const reapedS = selfAfter.children - selfBefore.children;
    const kids = tree.spent();
    const isWatchSsh = (c: string) => /(^|\/)ssh /.test(c) && c.includes(WATCH_MARK);
    // tsx's esbuild service runs the benchmark's TypeScript: not the server's, not counted.
    const isTooling = (c: string) => /(^|\/)esbuild /.test(c);
    const tooling = kids.filter((k) => isTooling(k.cmd));
    const watchSsh = kids.filter((k) => isWatchSsh(k.cmd));
    const others = kids.filter((k) => !isWatchSsh(k.cmd) && !isTooling(k.cmd));
    const sshS = sum(watchSsh.map((k) => k.own + k.children));
    const otherS = sum(others.map((k) => k.own + k.children)) + reapedS;
    const controllerS = serverS + sshS + otherS;
    const controllerPct = (100 * controllerS) / wallS;

    // The hosts.
    const roles = new Map<string, number>();
    const add = (role: string, s: number) => roles.set(role, (roles.get(role) ?? 0) + s);
    for (const t of nsTrackers.values()) {
      for (const p of t.spent()) {
        if (p.cmd.includes(WATCH_MARK) && /python/.test(p.cmd)) {
          add('watch script (python)', p.own);
          add('its re-reads (ip -j, nft -j, nft list; ended)', p.children);
        } else if (/\bip\b.*\bmonitor\b/.test(p.cmd)) add('ip monitor', p.own + p.children);
        else if (/\bnft\b.*\bmonitor\b/.test(p.cmd)) add('nft monitor', p.own + p.children);
        else if (/sshd/.test(p.cmd)) add('sshd (listener and sessions)', p.own + p.children);
        else add(`other: ${p.cmd.split(' ')[0]}`, p.own + p.children);
      }
    }
    const hostS = sum([...roles.values()]);
    const pgS = sum(pg.spent().map((p) => p.own + p.children));

    // What was published while nothing changed.
    const published: string[] = [];
    let messages = 0;
    for (const [topic, seq] of seqAfter) {
      const d = seq - (seqBefore.get(topic) ?? 0);
      if (d > 0) {
        messages += d;
        published.push(`${topic} +${d}`);
      }
    }

    log('');
    log(`Idle ${wallS.toFixed(1)} s, ${hostCount} hosts, STATE_RESYNC_S ${resyncS} s:`);
    log(
      table([
        ['side', 'what', 'CPU', '% of one core'],
        ['controller', 'server process (node, all threads)', secs(serverS), pct(serverS, wallS)],
        ['', `watchers' ssh clients (${watchSsh.length})`, secs(sshS), pct(sshS, wallS)],
        ...others.map((o) => [
          '',
          `other child: ${o.cmd.slice(0, 60)}`,
          secs(o.own + o.children),
          pct(o.own + o.children, wallS),
        ]),
        ['', 'children that ended (reaped by the server)', secs(reapedS), pct(reapedS, wallS)],
        ['', 'total', secs(controllerS), pct(controllerS, wallS)],
        ...[...roles.entries()]
          .sort((a, b) => b[1] - a[1])
          .map(([role, s], i) => [i === 0 ? 'hosts' : '', role, secs(s), pct(s, wallS)]),
        [
          '',
          `total (${(hostS / hostCount).toFixed(3)} s per host)`,
          secs(hostS),
          pct(hostS, wallS),
        ],
        ['database', "Postgres backends of the server's database", secs(pgS), pct(pgS, wallS)],
      ]),
    );
    const toolingS = sum(tooling.map((k) => k.own + k.children));
    log(`not counted: tsx's esbuild service (the benchmark's own TypeScript): ${secs(toolingS)}`);
    log(
      `server process, % of one core per 10 s: ${timeline.map((x) => x.toFixed(1)).join(' ')} ` +
        `(the benchmark's sampling, ${(samplingCpuUs / 1e6).toFixed(2)} s, is taken off the figure above)`,
    );
    log(
      `topic messages published while idle: ${messages}${published.length ? ` (${published.sort().join(', ')})` : ''}`,
    );
    log('');
    log(`controller CPU / 5% of one core = ${ratio(controllerPct / 5)} (goal <= 1.00x)`);
    return {
      name: NAME,
      rows: [
        {
          what: `controller CPU watching ${hostCount} idle hosts (${idleS} s, resync ${resyncS} s) vs 5% of a core`,
          subject: pct(controllerS, wallS),
          baseline: '5.00%',
          ratio: controllerPct / 5,
          goal: '<= 1.00x',
          met: controllerPct <= 5,
        },
        {
          what: `hosts' side: every process in the ${hostCount} namespaces (diagnostic)`,
          subject: pct(hostS, wallS),
          baseline: '5.00%',
          ratio: (100 * hostS) / wallS / 5,
          goal: '-',
          met: true,
        },
      ],
    };
  });
}

if (isMain(import.meta.url)) runAsScript(watchCpu);
