// WebSocket fan-out: C clients (default 1,000) subscribed to one host topic, and one change
// published to it with the topic log (TopicLog.publish, as a watcher's re-read or a run does);
// for each client, the time from the publish's commit (publish() resolving, or the commit's
// NOTIFY reaching the server if that came first) to the client's receipt of the diff.
// Prints p50 / p99 / max over R changes (default 20). Goal: p99 at most 200 ms. The floor: one
// client alone on another topic of the same hub, its change published in the same round.
//
// The clients live in a child process of their own (the `ws` client, one process for all), so
// the server's event loop (in this process, as in production) is not the clients' too. Times
// cross the two processes as epoch milliseconds with microseconds (performance.timeOrigin +
// performance.now()); the child's clock offset is measured over IPC and taken off.
import { fork } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import {
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
  type BenchResult,
  percentile,
} from './lib.ts';
import { ChildPeer, epochNow, type Answer } from './ipc.ts';

const NAME = 'ws-fanout';
const DEADLINE_MS = 290_000;
const CHILD_FLAG = '--ws-fanout-clients';
const FAN_TOPIC = 'hosts/fan';
const SOLO_TOPIC = 'hosts/solo';

/** Epoch ms with sub-ms resolution, comparable across processes of this machine. */
const sleep = (t: number) => new Promise<void>((r) => setTimeout(r, t));

// ---------------------------------------------------------------------------------------------
// The clients' process.

type ToChild =
  | { id: number; cmd: 'clock' }
  | { id: number; cmd: 'connect'; url: string; group: string; topic: string; count: number }
  | { id: number; cmd: 'expect'; group: string; marker: string; timeoutMs: number }
  | { id: number; cmd: 'await'; group: string }
  | { id: number; cmd: 'close' };

type FromChild = Answer;

interface Group {
  sockets: WebSocket[];
  /** Receipt time per client of the message carrying the marker armed by `expect`. */
  armed: { marker: string; times: (number | null)[]; left: number; done: () => void } | null;
  waiting: Promise<void> | null;
  timer: NodeJS.Timeout | null;
}

async function clientsMain(): Promise<void> {
  const groups = new Map<string, Group>();
  const reply = (m: FromChild) => process.send!(m);
  // The benchmark's process went away (or is done): so do the clients.
  process.on('disconnect', () => process.exit(0));

  const open = (url: string, topic: string, group: Group, index: number) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/ws`, ['routeplane.v1'], {
        headers: { authorization: `Bearer ${VIEWER_TOKEN}` },
        perMessageDeflate: false,
      });
      let subscribed = false;
      ws.on('message', (data) => {
        // Timestamp first: what follows is the client's own work, not delivery.
        const at = epochNow();
        const armed = group.armed;
        const text = String(data);
        if (!subscribed) {
          const m = JSON.parse(text) as { type: string; topic?: string };
          if (m.type === 'full' && m.topic === topic) {
            subscribed = true;
            resolve(ws);
          } else if (m.type === 'error') reject(new Error(`subscribe: ${text}`));
          return;
        }
        if (armed && armed.times[index] === null && text.includes(armed.marker)) {
          armed.times[index] = at;
          if (--armed.left === 0) armed.done();
        }
      });
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`upgrade refused: ${res.statusCode}`)),
      );
      ws.once('open', () => ws.send(JSON.stringify({ type: 'subscribe', topics: [topic] })));
    });

  process.on('message', (msg: ToChild) => {
    void (async () => {
      try {
        if (msg.cmd === 'clock') {
          reply({ id: msg.id, now: epochNow() });
        } else if (msg.cmd === 'connect') {
          const group: Group = { sockets: [], armed: null, waiting: null, timer: null };
          groups.set(msg.group, group);
          const t0 = epochNow();
          // In waves: a thousand upgrades and first reads at once only measure the backlog.
          for (let i = 0; i < msg.count; i += 50) {
            const wave = Array.from({ length: Math.min(50, msg.count - i) }, (_, k) =>
              open(msg.url, msg.topic, group, i + k),
            );
            group.sockets.push(...(await Promise.all(wave)));
          }
          reply({ id: msg.id, ms: epochNow() - t0 });
        } else if (msg.cmd === 'expect') {
          const group = groups.get(msg.group)!;
          group.waiting = new Promise<void>((done) => {
            group.armed = {
              marker: msg.marker,
              times: group.sockets.map(() => null),
              left: group.sockets.length,
              done,
            };
            group.timer = setTimeout(done, msg.timeoutMs);
          });
          reply({ id: msg.id });
        } else if (msg.cmd === 'await') {
          const group = groups.get(msg.group)!;
          await group.waiting;
          if (group.timer) clearTimeout(group.timer);
          const times = group.armed!.times;
          group.armed = null;
          reply({ id: msg.id, times });
        } else if (msg.cmd === 'close') {
          for (const g of groups.values()) for (const ws of g.sockets) ws.terminate();
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
// The benchmark's process: the server, the publishes, the figures.

/** A host topic's route object, as a watcher's re-read publishes it (about 300 bytes). */
function routeObject(i: number) {
  return {
    family: 'inet',
    dst: `203.0.113.${i % 256}/32`,
    gateway: null,
    dev: 'eth0',
    protocol: 'boot',
    metric: null,
    table: 'main',
    scope: 'link',
    prefsrc: null,
    type: 'unicast',
    flags: [],
    managed: false,
    bench_marker: `wsfan-${i}`,
  };
}

export async function wsFanout(): Promise<BenchResult> {
  const clients = envInt('BENCH_CLIENTS', 1000, 1, 10_000);
  const changes = envInt('BENCH_CHANGES', 20, 1, 1000);
  log(
    `== ${NAME}: one change to ${clients} WebSocket subscribers, ${changes} changes, ${databaseLabel()} ==`,
  );
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    // Two hosts no one connects to (local, not watched): only their topics are used.
    const dir = await tempDir(cleanup, 'wsfan');
    const inventoryPath = path.join(dir, 'inventory.yml');
    await writeFile(
      inventoryPath,
      [
        'all:',
        '  hosts:',
        ...['fan', 'solo'].map(
          (h) =>
            `    ${h}: { ansible_connection: local, ansible_python_interpreter: /usr/bin/python3 }`,
        ),
        '',
      ].join('\n'),
    );
    const server = await benchServer(cleanup, { INVENTORY: inventoryPath, WATCH_HOSTS: 'false' });
    const topicLog = server.services.live.log;
    // Diagnostic taps on the hub (wrapped, not changed): when the commit's notification reached
    // this process, and when the hub handed the change to its last socket.
    const hub = server.services.live.hub as unknown as {
      published(p: { topic: string; seq: number }): void;
      sendText(client: unknown, text: string): void;
    };
    const tap = { marker: '', notified: 0, firstSend: 0, lastSend: 0 };
    const published = hub.published.bind(hub);
    hub.published = (p) => {
      if (tap.marker && !tap.notified) tap.notified = epochNow();
      published(p);
    };
    const sendText = hub.sendText.bind(hub);
    hub.sendText = (client, text) => {
      sendText(client, text);
      if (tap.marker && text.includes(tap.marker)) {
        tap.lastSend = epochNow();
        tap.firstSend ||= tap.lastSend;
      }
    };

    const child = fork(fileURLToPath(import.meta.url), [CHILD_FLAG], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    cleanup.defer('clients process', async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(3000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const kids = new ChildPeer(child, 'the clients process');

    const solo = await kids.ask<FromChild & { ms: number }>({
      cmd: 'connect',
      url: server.url,
      group: 'solo',
      topic: SOLO_TOPIC,
      count: 1,
    });
    const fan = await kids.ask<FromChild & { ms: number }>({
      cmd: 'connect',
      url: server.url,
      group: 'fan',
      topic: FAN_TOPIC,
      count: clients,
    });
    log(
      `connected and subscribed: 1 client to ${SOLO_TOPIC} (${ms(solo.ms)}), ${clients} to ${FAN_TOPIC} (${(fan.ms / 1000).toFixed(1)} s)`,
    );
    // The `clients` topic and the subscribes' own writes settle before anything is timed.
    await sleep(1000);

    let n = 0;
    /** One publish to `topic`; each client's delay from the commit (and from the call). */
    const round = async (group: string, topic: string, count: number) => {
      const i = n++;
      const marker = `"bench_marker":"wsfan-${i}"`;
      await kids.ask({ cmd: 'expect', group, marker, timeoutMs: 10_000 });
      const { offset } = await kids.offset(5);
      Object.assign(tap, { marker, notified: 0, firstSend: 0, lastSend: 0 });
      const called = epochNow();
      const published = await topicLog.publish(topic, {
        objects: { [`route/inet/main/203.0.113.${i % 256}/32/${i}`]: routeObject(i) },
      });
      const committed = epochNow();
      if (!published) throw new Error(`publish to ${topic} changed nothing`);
      const { times } = await kids.ask<FromChild & { times: (number | null)[] }>({
        cmd: 'await',
        group,
      });
      const missing = times.filter((t) => t === null).length;
      if (missing > 0) throw new Error(`${missing} of ${count} clients got no diff within 10 s`);
      // The commit: publish() resolving here, or the commit's notification reaching this process
      // if that came first (both follow the commit; the resolution can lag behind the hub's
      // own delivery of the change, which then runs first on this event loop).
      const commit = tap.notified ? Math.min(committed, tap.notified) : committed;
      const fromCommit = (times as number[]).map((t) => t - offset - commit);
      const taps = {
        notified: tap.notified - commit,
        firstSend: tap.firstSend - commit,
        lastSend: tap.lastSend - commit,
      };
      tap.marker = '';
      return { fromCommit, commitMs: commit - called, taps };
    };

    // One untimed round of each (first reads of the topics after their `full`).
    await round('solo', SOLO_TOPIC, 1);
    await round('fan', FAN_TOPIC, clients);
    const soloAll: number[] = [];
    const fanAll: number[] = [];
    const fanLast: number[] = [];
    const fanP99: number[] = [];
    const commits: number[] = [];
    const fanTaps: { notified: number; firstSend: number; lastSend: number }[] = [];
    for (let r = 0; r < changes; r++) {
      // Alternate which goes first; a pause between them so neither rides the other's work.
      const order = r % 2 === 0 ? ['solo', 'fan'] : ['fan', 'solo'];
      for (const g of order) {
        if (g === 'solo') {
          const s = await round('solo', SOLO_TOPIC, 1);
          soloAll.push(...s.fromCommit);
          commits.push(s.commitMs);
        } else {
          const f = await round('fan', FAN_TOPIC, clients);
          fanAll.push(...f.fromCommit);
          fanLast.push(Math.max(...f.fromCommit));
          fanP99.push(percentile(f.fromCommit, 99));
          fanTaps.push(f.taps);
          commits.push(f.commitMs);
        }
        await sleep(150);
      }
      log(
        `change ${r + 1}/${changes}: ${clients} clients p50 ${ms(percentile(fanAll.slice(-clients), 50))}, ` +
          `p99 ${ms(fanP99.at(-1)!)}, last ${ms(fanLast.at(-1)!)}; one client ${soloAll.at(-1)!.toFixed(1)} ms`,
      );
    }
    const clock = await kids.offset();
    await kids.ask({ cmd: 'close' }).catch(() => undefined);

    const fanP50 = percentile(fanAll, 50);
    const p99 = percentile(fanAll, 99);
    const fanMax = Math.max(...fanAll);
    const soloP50 = percentile(soloAll, 50);
    const soloMax = Math.max(...soloAll);
    const f1 = (x: number) => `${x.toFixed(1)} ms`;
    log('');
    log(
      `Delivery, publish commit to receipt (${changes} changes; clock offset between the processes ` +
        `${clock.offset.toFixed(2)} ms, measured to within ${(clock.rtt / 2).toFixed(2)} ms):`,
    );
    log(
      table([
        ['subscribers', 'samples', 'p50', 'p95', 'p99', 'max'],
        [
          `${clients} clients on ${FAN_TOPIC}`,
          String(fanAll.length),
          f1(fanP50),
          f1(percentile(fanAll, 95)),
          f1(p99),
          f1(fanMax),
        ],
        [
          `1 client on ${SOLO_TOPIC} (floor)`,
          String(soloAll.length),
          f1(soloP50),
          f1(percentile(soloAll, 95)),
          f1(percentile(soloAll, 99)),
          f1(soloMax),
        ],
      ]),
    );
    log(
      `per change, ${clients} clients: p99 median ${f1(percentile(fanP99, 50))}, last client median ` +
        `${f1(percentile(fanLast, 50))}, worst ${f1(Math.max(...fanLast))}`,
    );
    log(`publish call to commit (the topic log's transaction): p50 ${f1(percentile(commits, 50))}`);
    const tapMed = (k: 'notified' | 'firstSend' | 'lastSend') =>
      f1(
        percentile(
          fanTaps.map((t) => t[k]),
          50,
        ),
      );
    log(
      `server side, ${clients} clients, medians from the commit: notification heard ${tapMed('notified')}, ` +
        `first socket send ${tapMed('firstSend')}, last socket send ${tapMed('lastSend')} ` +
        `(then the kernel and the clients' process)`,
    );
    log('');
    log(`p99 / 200 ms = ${ratio(p99 / 200)} (goal <= 1.00x)`);
    log(`${clients} clients p50 / one client p50 = ${ratio(fanP50 / soloP50)}`);
    log(`${clients} clients p99 / one client p99 = ${ratio(p99 / percentile(soloAll, 99))}`);
    return {
      name: NAME,
      rows: [
        {
          what: `one change to ${clients} subscribers, p99 of ${changes} (commit to receipt) vs 200 ms`,
          subject: f1(p99),
          baseline: ms(200),
          ratio: p99 / 200,
          goal: '<= 1.00x',
          met: p99 <= 200,
        },
        {
          what: `${clients} subscribers vs one subscriber, p50 (diagnostic)`,
          subject: f1(fanP50),
          baseline: f1(soloP50),
          ratio: fanP50 / soloP50,
          goal: '-',
          met: true,
        },
      ],
    };
  });
}

if (process.argv.includes(CHILD_FLAG)) void clientsMain();
else if (isMain(import.meta.url)) runAsScript(wsFanout);
