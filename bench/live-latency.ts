// Live-state latency: a route changed by hand on a lab host (`ip netns exec <ns> ip route add|del
// 203.0.113.X/32 dev eth0`) until a WebSocket client subscribed to `hosts/*` receives the diff
// naming that route's key, on a lab of H hosts (default 20) watched by the server (WATCH_HOSTS,
// STATE_RESYNC_S at its default). Two cases: N changes one after another (default 200: adds
// spread over the hosts, then their deletions, a short random gap after each is seen), and a
// burst (default 100 adds at once, B/H per host, then the same deletions at once; written as
// lines to a long-lived `ip -batch -` per namespace, see `one` below). Prints p50, p95, max.
// Goal: p95 at most 1 s. Against, in the same run:
// - the physical limit: `ip -ts monitor route` running in each namespace, the time from the
//   command's start to the monitor printing its line (for the same changes);
// - the naive peer: polling with an Ansible gather (gather_state.yml, routeplane_state, all
//   hosts) every 5 s; its expected latency is interval/2 + one gather (p95: 0.95 x interval +
//   one gather), with the gather measured here (SSH masters kept between polls, as Ansible's
//   ControlPersist does; the first, cold, gather printed too).
// Also splits routeplane's time after the kernel by wrapping (not changing) two of the server's
// methods: when each watcher state reached it (HostFeed.observed) and when the host topic's
// diff committed (TopicLog.publish); and counts the server log's warnings and watch events.
//
// The WebSocket client, the monitors and the commands run in a child process of their own, so
// that the commands' process spawns do not stall the server's event loop (in this process, as
// in production) and the client's receipt is not queued behind the server's own work.
import { fork } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { pino } from 'pino';
import WebSocket from 'ws';
import { createLogger, type Logger } from '../src/logger.ts';
import { closeSshMasters } from '../src/runs/process-reaper.ts';
import type { RunningServer } from '../src/server.ts';
import {
  PLAYBOOKS_DIR,
  VIEWER_TOKEN,
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
  type Cleanup,
  type BenchResult,
  percentile,
} from './lib.ts';
import { ansibleEnv, benchFleet, type FleetHost } from './routes-lib.ts';
import { ChildPeer, epochNow, type Answer } from './ipc.ts';

const NAME = 'live-latency';
const DEADLINE_MS = 290_000;
const CHILD_FLAG = '--live-latency-driver';
const POLL_INTERVAL_MS = 5_000;
const SEEN_TIMEOUT_MS = 30_000;
const GATHER_PLAYBOOK = path.join(PLAYBOOKS_DIR, 'gather_state.yml');

const sleep = (t: number) => new Promise<void>((r) => setTimeout(r, t));

interface Change {
  host: string;
  netns: string;
  op: 'add' | 'del';
  /** e.g. 203.0.113.5/32 */
  dst: string;
}

interface Sample extends Change {
  /** Just before the command was started (epoch ms). */
  t0: number;
  /** The command exited (null for a line written to `ip -batch`). */
  done: number | null;
  /** The namespace's `ip -ts monitor route` printed the change (its own timestamp). */
  kernel: number | null;
  /** The WebSocket client received the diff naming the route's key. */
  ws: number | null;
}

const routeKey = (dst: string) => `route/inet/main/${dst}/0`;

// ---------------------------------------------------------------------------------------------
// The driver's process: WebSocket client, monitors, commands.

type ToDriver =
  | { id: number; cmd: 'connect'; url: string; hosts: FleetHost[] }
  | { id: number; cmd: 'run'; changes: Change[]; burst: boolean; gapMs: [number, number] }
  | { id: number; cmd: 'close' };

type FromDriver = Answer;

/** `[2026-11-23T14:27:33.750867] [Deleted ]203.0.113.5 dev eth0 scope link` (local time). */
const MONITOR_LINE = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})\]\s+(Deleted\s+)?(\S+)\s/;

async function driverMain(): Promise<void> {
  const reply = (m: FromDriver) => process.send!(m);
  process.on('disconnect', () => process.exit(0));
  /** First receipt of each `topic|key|op`, by the client; first monitor line of `netns|op|dst`. */
  const seen = new Map<string, number>();
  const kernel = new Map<string, number>();
  const waiters = new Map<string, () => void>();
  const view = new Map<string, Map<string, Record<string, unknown>>>();
  const monitors: ResultPromise[] = [];
  let ws: WebSocket | null = null;

  const mark = (map: Map<string, number>, key: string, at: number) => {
    if (map.has(key)) return;
    map.set(key, at);
    waiters.get(key)?.();
  };
  const waitFor = (map: Map<string, number>, key: string, timeoutMs: number) =>
    new Promise<number | null>((resolve) => {
      if (map.has(key)) return resolve(map.get(key)!);
      const timer = setTimeout(() => {
        waiters.delete(key);
        resolve(null);
      }, timeoutMs);
      waiters.set(key, () => {
        clearTimeout(timer);
        waiters.delete(key);
        resolve(map.get(key)!);
      });
    });

  const monitor = (host: FleetHost) => {
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
        if (!m) continue;
        // No offset in the text: Date reads it as local time, which is how ip printed it.
        const at = new Date(m[1]!).getTime() + Number(m[2]) / 1000;
        const dst = m[4]!.includes('/') ? m[4]! : `${m[4]}/32`;
        mark(kernel, `${host.netns}|${m[3] ? 'del' : 'add'}|${dst}`, at);
      }
    });
    monitors.push(child);
  };

  const connect = (url: string, hosts: FleetHost[]) =>
    new Promise<void>((resolve, reject) => {
      ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/ws`, ['routeplane.v1'], {
        headers: { authorization: `Bearer ${VIEWER_TOKEN}` },
        perMessageDeflate: false,
      });
      const ready = () =>
        hosts.every((h) => {
          const o = view.get(`hosts/${h.name}`);
          const host = o?.get('host') as { watch?: { state?: string } } | undefined;
          return host?.watch?.state === 'watching' && o!.has('link/eth0');
        });
      let done = false;
      ws.on('message', (data) => {
        const at = epochNow();
        const m = JSON.parse(String(data)) as {
          type: string;
          topic: string;
          objects?: Record<string, Record<string, unknown>>;
          added?: Record<string, Record<string, unknown>>;
          changed?: Record<string, Record<string, unknown>>;
          removed?: string[];
        };
        if (m.type === 'error') {
          process.stderr.write(`driver: server error message ${String(data)}\n`);
          return;
        }
        if (m.type !== 'full' && m.type !== 'diff') return;
        let objects = view.get(m.topic);
        if (!objects || m.type === 'full') view.set(m.topic, (objects = new Map()));
        for (const [k, v] of Object.entries({ ...m.objects, ...m.added, ...m.changed })) {
          objects.set(k, v);
        }
        for (const k of m.removed ?? []) objects.delete(k);
        if (m.type === 'diff') {
          for (const k of [...Object.keys(m.added ?? {}), ...Object.keys(m.changed ?? {})]) {
            mark(seen, `${m.topic}|${k}|add`, at);
          }
          for (const k of m.removed ?? []) mark(seen, `${m.topic}|${k}|del`, at);
        }
        if (!done && ready()) {
          done = true;
          resolve();
        }
      });
      ws.once('error', reject);
      ws.once('open', () => ws!.send(JSON.stringify({ type: 'subscribe', topics: ['hosts/*'] })));
    });

  /** Per namespace, one `ip -batch -` started before anything is timed (for bursts). */
  const batches = new Map<string, ResultPromise>();
  let batchErrors = 0;

  const one = async (c: Change, how: 'exec' | 'batch'): Promise<Sample> => {
    const wsKey = `hosts/${c.host}|${routeKey(c.dst)}|${c.op}`;
    const kKey = `${c.netns}|${c.op}|${c.dst}`;
    seen.delete(wsKey);
    kernel.delete(kKey);
    let t0: number;
    let done: number | null = null;
    if (how === 'exec') {
      // As a person types it: a process (and a mount namespace) per command.
      t0 = epochNow();
      await execa('ip', ['netns', 'exec', c.netns, 'ip', 'route', c.op, c.dst, 'dev', 'eth0']);
      done = epochNow();
    } else {
      // A burst: the same change as a line to the namespace's long-lived `ip -batch -`. A
      // hundred `ip netns exec` (or `ip -n`, which also unshares a mount namespace) at once
      // spend seconds building and tearing down mount namespaces (measured: the commands took
      // 11 s to exit, their routes were in the kernel after 0.24 s), which stalls the whole
      // machine, the watchers' re-reads included: that measured the machine, not routeplane.
      t0 = epochNow();
      batches.get(c.netns)!.stdin!.write(`route ${c.op} ${c.dst} dev eth0\n`);
    }
    const left = Math.max(0, t0 + SEEN_TIMEOUT_MS - epochNow());
    const [k, w] = await Promise.all([waitFor(kernel, kKey, left), waitFor(seen, wsKey, left)]);
    return { ...c, t0, done, kernel: k, ws: w };
  };

  process.on('message', (msg: ToDriver) => {
    void (async () => {
      try {
        if (msg.cmd === 'connect') {
          for (const h of msg.hosts) {
            monitor(h);
            const b = execa('ip', ['-n', h.netns, '-force', '-batch', '-'], {
              reject: false,
              stdin: 'pipe',
              stdout: 'ignore',
              buffer: false,
            });
            b.stderr!.setEncoding('utf8');
            b.stderr!.on('data', (text: string) => {
              batchErrors++;
              process.stderr.write(`driver: ip -n ${h.netns} -batch: ${text}`);
            });
            batches.set(h.netns, b);
          }
          const t0 = epochNow();
          await connect(msg.url, msg.hosts);
          reply({ id: msg.id, ms: epochNow() - t0 });
        } else if (msg.cmd === 'run') {
          const samples: Sample[] = [];
          if (msg.burst) {
            samples.push(...(await Promise.all(msg.changes.map((c) => one(c, 'batch')))));
          } else {
            const [lo, hi] = msg.gapMs;
            for (const c of msg.changes) {
              samples.push(await one(c, 'exec'));
              await sleep(lo + Math.random() * (hi - lo));
            }
          }
          reply({ id: msg.id, samples, batchErrors });
        } else if (msg.cmd === 'close') {
          (ws as WebSocket | null)?.terminate();
          for (const b of batches.values()) b.stdin!.end();
          for (const m of monitors) m.kill('SIGTERM');
          await Promise.all([...monitors, ...batches.values()]);
          reply({ id: msg.id });
          process.disconnect();
        }
      } catch (err) {
        reply({ id: msg.id, error: (err as Error).stack ?? String(err) });
      }
    })();
  });
}

// ---------------------------------------------------------------------------------------------
// The benchmark's process: lab, server, the naive peer, the figures.

interface Stats {
  n: number;
  missed: number;
  p50: number;
  p95: number;
  max: number;
  mean: number;
}

function stats(xs: (number | null)[]): Stats {
  const ok = xs.filter((x): x is number => x !== null);
  return {
    n: ok.length,
    missed: xs.length - ok.length,
    p50: percentile(ok, 50),
    p95: percentile(ok, 95),
    max: ok.length ? Math.max(...ok) : NaN,
    mean: ok.reduce((a, b) => a + b, 0) / ok.length,
  };
}

/** When each watcher state reached the server and when its diff committed (wrapped, not changed). */
function tapServer(server: RunningServer) {
  const arrivals = new Map<
    string,
    {
      at: number;
      v4main: Set<string>;
      commit?: { start: number; committed: number; changed: boolean } | null;
    }[]
  >();
  /** Every publish of a host's kernel state (also those that changed nothing), in call order. */
  const commits = new Map<string, { start: number; committed: number; changed: boolean }[]>();
  const feed = server.services.live.hosts;
  const observed = feed.observed.bind(feed);
  feed.observed = (host, state, watch) => {
    const v4main = new Set(
      state.routes.filter((r) => r.family === 'inet' && r.table === 'main').map((r) => r.dst),
    );
    const list = arrivals.get(host) ?? [];
    list.push({ at: epochNow(), v4main });
    arrivals.set(host, list);
    return observed(host, state, watch);
  };
  const topicLog = server.services.live.log;
  const publish = topicLog.publish.bind(topicLog);
  topicLog.publish = async (topic, update) => {
    const start = epochNow();
    const r = await publish(topic, update);
    if (update.scope === 'state' && topic.startsWith('hosts/')) {
      const host = topic.slice('hosts/'.length);
      const list = commits.get(host) ?? [];
      list.push({ start, committed: epochNow(), changed: r !== null });
      commits.set(host, list);
    }
    return r;
  };
  return {
    /** For one change: kernel to the first state showing it, to its diff's commit, to the client. */
    split(s: Sample): { watcher: number; server: number; delivery: number } | null {
      if (s.kernel === null || s.ws === null) return null;
      const arrival = (arrivals.get(s.host) ?? []).find(
        (a) => a.at >= s.kernel! && a.v4main.has(s.dst) === (s.op === 'add'),
      );
      if (!arrival) return null;
      if (arrival.commit === undefined) {
        // A host's states are handled one after another: each arrival's publish is the next
        // one not taken by an earlier arrival.
        const pubs = commits.get(s.host) ?? [];
        let next = 0;
        for (const a of arrivals.get(s.host) ?? []) {
          while (next < pubs.length && pubs[next]!.start < a.at) next++;
          a.commit = pubs[next] ?? null;
          if (next < pubs.length) next++;
        }
      }
      const commit = arrival.commit;
      if (!commit?.changed) return null;
      return {
        watcher: arrival.at - s.kernel,
        server: commit.committed - arrival.at,
        delivery: s.ws - commit.committed,
      };
    },
  };
}

/**
 * The server's log as production writes it (pino at info, synchronously) into a file of the
 * benchmark's temp dir; summary() counts its warnings and watch events, to tell a slow
 * delivery from a watcher that lost its connection.
 */
export async function fileLogger(
  cleanup: Cleanup,
): Promise<{ logger: Logger; summary(): Promise<string> }> {
  const dir = await tempDir(cleanup, 'log');
  const file = path.join(dir, 'server.log');
  const dest = pino.destination({ dest: file, sync: true });
  cleanup.defer('server log', async () => dest.end());
  const logger = createLogger('info', dest as unknown as NodeJS.WritableStream);
  return {
    logger,
    async summary() {
      const counts = new Map<string, number>();
      const examples = new Map<string, string>();
      for (const line of (await readFile(file, 'utf8')).split('\n')) {
        if (!line) continue;
        let e: { level?: number; event?: string; host?: string; error?: string; err?: unknown };
        try {
          e = JSON.parse(line) as typeof e;
        } catch {
          continue;
        }
        const event = e.event ?? '(no event)';
        if ((e.level ?? 0) < 40 && !event.startsWith('watch.')) continue;
        counts.set(event, (counts.get(event) ?? 0) + 1);
        const why = e.error ?? (e.err ? JSON.stringify(e.err).slice(0, 160) : undefined);
        if (why && !examples.has(event)) examples.set(event, `${e.host ?? ''}: ${why}`.trim());
      }
      if (counts.size === 0) return 'server log: no warnings, no watch events';
      return `server log (warnings and watch events): ${[...counts.entries()]
        .sort()
        .map(([k, n]) => `${k} ${n}${examples.has(k) ? ` (e.g. ${examples.get(k)})` : ''}`)
        .join('; ')}`;
    },
  };
}

export async function liveLatency(): Promise<BenchResult> {
  const hostCount = envInt('BENCH_HOSTS', 20, 1, 60);
  const changes = envInt('BENCH_CHANGES', 200, 2, 400);
  const burst = envInt('BENCH_BURST', 100, 0, 20 * hostCount);
  log(
    `== ${NAME}: hand-made route changes on ${hostCount} watched hosts to a WebSocket client, ` +
      `${changes} sequential + ${burst} burst adds and their deletions, ${databaseLabel()} ==`,
  );
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    const fleet = await benchFleet(cleanup, hostCount);
    const hosts = fleet.hosts;
    const started = performance.now();
    const serverLog = await fileLogger(cleanup);
    const server = await benchServer(
      cleanup,
      { INVENTORY: fleet.inventoryPath, WATCH_HOSTS: 'true' },
      { logger: serverLog.logger },
    );
    const child = fork(fileURLToPath(import.meta.url), [CHILD_FLAG], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    cleanup.defer('driver process', async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(3000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const driver = new ChildPeer(child, 'the driver process');
    const taps = tapServer(server);
    await driver.ask({ cmd: 'connect', url: server.url, hosts });
    log(
      `every host watched and in the client's view ${((performance.now() - started) / 1000).toFixed(1)} s after the server started`,
    );
    // Let the watchers' first reads and the host topics' first writes settle.
    await sleep(2000);

    // Sequential: adds round-robin over the hosts, then the deletions in the same order.
    const half = Math.floor(changes / 2);
    const adds: Change[] = Array.from({ length: half }, (_, i) => {
      const h = hosts[i % hosts.length]!;
      return { host: h.name, netns: h.netns, op: 'add', dst: `203.0.113.${i % 200}/32` };
    });
    const seqChanges = [...adds, ...adds.map((c) => ({ ...c, op: 'del' as const }))];
    const run = async (list: Change[], isBurst: boolean) =>
      (
        await driver.ask<FromDriver & { samples: Sample[] }>({
          cmd: 'run',
          changes: list,
          burst: isBurst,
          gapMs: [20, 120],
        })
      ).samples;
    const t1 = performance.now();
    const sequential = await run(seqChanges, false);
    log(
      `sequential: ${sequential.length} changes in ${((performance.now() - t1) / 1000).toFixed(1)} s`,
    );

    // Burst: B adds at once (B/H on each host, other destinations), then their deletions at once.
    const burstAdds: Change[] = Array.from({ length: burst }, (_, i) => {
      const h = hosts[i % hosts.length]!;
      const j = Math.floor(i / hosts.length);
      return { host: h.name, netns: h.netns, op: 'add', dst: `203.0.113.${200 + (j % 56)}/32` };
    });
    const burstSamples: Sample[] = [];
    if (burst > 0) {
      await sleep(1000);
      burstSamples.push(...(await run(burstAdds, true)));
      await sleep(1000);
      burstSamples.push(
        ...(await run(
          burstAdds.map((c) => ({ ...c, op: 'del' as const })),
          true,
        )),
      );
      log(`burst: ${burstSamples.length} changes (${burst} adds at once, then their deletions)`);
    }
    await driver.ask({ cmd: 'close' }).catch(() => undefined);

    // The naive peer's gather: every host, ansible-playbook with the runner's environment, the
    // first with new connections, then with the masters it left (a poller every 5 s keeps them).
    // Short: ssh's ControlPath (the dir, a 40-character hash, a random suffix) must fit a socket.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rpll-'));
    cleanup.defer(`rm ${dir}`, () => rm(dir, { recursive: true, force: true, maxRetries: 3 }));
    const dirs = { cp: path.join(dir, 'cp'), tmp: path.join(dir, 'tmp') };
    await mkdir(dirs.cp, { mode: 0o700 });
    await mkdir(dirs.tmp, { mode: 0o700 });
    cleanup.defer('gather ssh masters', () => closeSshMasters(dirs.cp, dir));
    const gather = async () => {
      const t0 = performance.now();
      const r = await execa('ansible-playbook', ['-i', fleet.inventoryPath, GATHER_PLAYBOOK], {
        cwd: dir,
        env: ansibleEnv(dirs),
        extendEnv: false,
        reject: false,
      });
      const elapsed = performance.now() - t0;
      if (r.exitCode !== 0) {
        throw new Error(
          `gather: ansible-playbook exited ${r.exitCode}: ${r.stderr.slice(-500)} ${r.stdout.slice(-1500)}`,
        );
      }
      return elapsed;
    };
    const gatherCold = await gather();
    const gatherWarm = [await gather()];
    const gatherMs = percentile(gatherWarm, 50);
    const naiveMean = POLL_INTERVAL_MS / 2 + gatherMs;
    const naiveP95 = 0.95 * POLL_INTERVAL_MS + gatherMs;

    const report = (label: string, samples: Sample[]) => {
      const api = stats(samples.map((s) => (s.ws === null ? null : s.ws - s.t0)));
      const phys = stats(samples.map((s) => (s.kernel === null ? null : s.kernel - s.t0)));
      const after = stats(
        samples.map((s) => (s.ws === null || s.kernel === null ? null : s.ws - s.kernel)),
      );
      const cmd = stats(samples.map((s) => (s.done === null ? null : s.done - s.t0)));
      // Where routeplane's time after the kernel goes, from the taps on the server.
      const split = samples.map((s) => taps.split(s));
      const watcher = stats(split.map((x) => x?.watcher ?? null));
      const serverSide = stats(split.map((x) => x?.server ?? null));
      const delivery = stats(split.map((x) => x?.delivery ?? null));
      return { label, api, phys, after, cmd, watcher, serverSide, delivery };
    };
    const rows = [
      report(`sequential, ${sequential.length} changes`, sequential),
      ...(burst > 0
        ? [
            report(`burst adds, ${burst} at once`, burstSamples.slice(0, burst)),
            report(`burst deletions, ${burst} at once`, burstSamples.slice(burst)),
          ]
        : []),
      report(`all, ${sequential.length + burstSamples.length} changes`, [
        ...sequential,
        ...burstSamples,
      ]),
    ];
    const all = rows.at(-1)!;
    const f = (x: number) => ms(x);
    log('');
    log('Command start to receipt (ms); the physical limit is the namespace monitor printing it:');
    log(
      table([
        ['case', 'way', 'p50', 'p95', 'max', 'mean', 'missed'],
        ...rows.flatMap((r) => [
          [
            r.label,
            'routeplane: WebSocket diff',
            f(r.api.p50),
            f(r.api.p95),
            f(r.api.max),
            f(r.api.mean),
            String(r.api.missed),
          ],
          [
            '',
            'physical: ip monitor in the ns',
            f(r.phys.p50),
            f(r.phys.p95),
            f(r.phys.max),
            f(r.phys.mean),
            String(r.phys.missed),
          ],
          [
            '',
            'routeplane after the kernel',
            f(r.after.p50),
            f(r.after.p95),
            f(r.after.max),
            f(r.after.mean),
            '',
          ],
          ...(r.cmd.n > 0
            ? [
                [
                  '',
                  '(the command itself ran)',
                  f(r.cmd.p50),
                  f(r.cmd.p95),
                  f(r.cmd.max),
                  f(r.cmd.mean),
                  '',
                ],
              ]
            : []),
        ]),
      ]),
    );
    log('');
    log("routeplane's time after the kernel, split by taps on the server (ms):");
    log(
      table([
        ['case', 'part', 'p50', 'p95', 'max', 'mean'],
        ...rows.flatMap((r) => [
          [
            r.label,
            'kernel -> state line at the server',
            f(r.watcher.p50),
            f(r.watcher.p95),
            f(r.watcher.max),
            f(r.watcher.mean),
          ],
          [
            '',
            'state line -> topic diff committed',
            f(r.serverSide.p50),
            f(r.serverSide.p95),
            f(r.serverSide.max),
            f(r.serverSide.mean),
          ],
          [
            '',
            'diff committed -> client receipt',
            f(r.delivery.p50),
            f(r.delivery.p95),
            f(r.delivery.max),
            f(r.delivery.mean),
          ],
        ]),
      ]),
    );
    log(
      '(watcher: the monitor trigger, the 80 ms debounce, the re-read in the namespace, ssh; server: ' +
        "the host's earlier states ahead of it, the snapshot write, the topic transaction; " +
        "delivery: NOTIFY, the hub's read of the message, the send, the client)",
    );
    log('');
    log(
      `naive peer: an Ansible gather of all ${hostCount} hosts every ${POLL_INTERVAL_MS / 1000} s; one gather ` +
        `${ms(gatherMs)} with kept connections (${gatherWarm.map((x) => x.toFixed(0)).join(', ')} ms), ${ms(gatherCold)} cold; ` +
        `expected latency mean ${ms(naiveMean)}, p95 ${ms(naiveP95)}`,
    );
    log('');
    log(await serverLog.summary());
    log('');
    const p95 = all.api.p95;
    log(`routeplane p95 / 1 s = ${ratio(p95 / 1000)} (goal <= 1.00x)`);
    for (const r of rows) {
      log(
        `${r.label}: p50 / physical p50 = ${ratio(r.api.p50 / r.phys.p50)}, ` +
          `p95 / physical p95 = ${ratio(r.api.p95 / r.phys.p95)}; ` +
          `naive mean / routeplane mean = ${ratio(naiveMean / r.api.mean)}, ` +
          `naive p95 / routeplane p95 = ${ratio(naiveP95 / r.api.p95)}`,
      );
    }
    const missed = all.api.missed;
    if (missed > 0) {
      log(
        `WARNING: ${missed} changes did not reach the client within ${SEEN_TIMEOUT_MS / 1000} s of their command`,
      );
    }
    return {
      name: NAME,
      rows: [
        {
          what: `hand-made route change to WebSocket diff, p95 of ${all.api.n} on ${hostCount} hosts, vs 1 s`,
          subject: ms(p95),
          baseline: ms(1000),
          ratio: p95 / 1000,
          goal: '<= 1.00x',
          met: p95 <= 1000 && missed === 0,
        },
        {
          what: 'change to WebSocket diff vs ip monitor in the namespace, p50 (physical limit)',
          subject: ms(all.api.p50),
          baseline: ms(all.phys.p50),
          ratio: all.api.p50 / all.phys.p50,
          goal: '-',
          met: true,
        },
        {
          what: `naive peer (gather every 5 s, expected mean) vs change to WebSocket diff, mean`,
          subject: ms(naiveMean),
          baseline: ms(all.api.mean),
          ratio: naiveMean / all.api.mean,
          goal: '-',
          met: true,
        },
      ],
    };
  });
}

if (process.argv.includes(CHILD_FLAG)) void driverMain();
else if (isMain(import.meta.url)) runAsScript(liveLatency);
