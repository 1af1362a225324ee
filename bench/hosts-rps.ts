// How close does GET /v1/hosts/{host} (served from the last gather snapshot) come to what
// Express itself can serve? routeplane with bearer auth, OpenAPI validation, request logging and
// its database, against a bare Express app answering the same JSON body. Load comes from
// autocannon in its own process, keep-alive connections. Goal: ratio at least 0.6x.
// Every server runs in this process, one at a time, so the CPU time this process spends per
// request served is each one's own cost; that ratio moves much less with the machine's load
// than requests per second do, and is printed beside it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Result } from 'autocannon';
import { execa } from 'execa';
import express from 'express';
import {
  REPO,
  VIEWER_TOKEN,
  benchLab,
  benchServer,
  databaseLabel,
  loadavg,
  envInt,
  isMain,
  log,
  median,
  ratio,
  runAsScript,
  table,
  withCleanup,
  type BenchResult,
  type Cleanup,
} from './lib.ts';

const NAME = 'hosts-rps';
const DEADLINE_MS = 290_000;
const AUTOCANNON = path.join(REPO, 'node_modules/autocannon/autocannon.js');
const HOST = 'h1';

interface Settings {
  connections: number;
  durationS: number;
  rounds: number;
  warmupS: number;
}

function settings(): Settings {
  return {
    connections: envInt('BENCH_CONNECTIONS', 16, 1, 1000),
    durationS: envInt('BENCH_DURATION_S', 5, 1, 60),
    rounds: envInt('BENCH_ROUNDS', 3, 1, 10),
    warmupS: envInt('BENCH_WARMUP_S', 3, 0, 30),
  };
}

interface Load {
  rps: number;
  p50: number;
  p99: number;
  /** CPU time of this process (user + system) per request served, in microseconds. */
  cpuUs: number;
}

const GOAL = 0.6;

/** One autocannon run in its own process; throws unless every response was a 2xx. */
async function load(url: string, s: Settings, durationS: number): Promise<Load> {
  const cpu = process.cpuUsage();
  const r = await execa(
    process.execPath,
    [
      AUTOCANNON,
      '--json',
      '--no-progress',
      '-c',
      String(s.connections),
      '-d',
      String(durationS),
      '-H',
      `authorization=Bearer ${VIEWER_TOKEN}`,
      url,
    ],
    { reject: false, stdin: 'ignore', timeout: (durationS + 30) * 1000 },
  );
  const used = process.cpuUsage(cpu);
  if (r.exitCode !== 0) throw new Error(`autocannon failed (${r.exitCode}): ${r.stderr}`);
  const result = JSON.parse(r.stdout) as Result;
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0 || result['2xx'] === 0) {
    throw new Error(
      `${url}: ${result['2xx']} ok, ${result.non2xx} non-2xx, ${result.errors} errors, ` +
        `${result.timeouts} timeouts`,
    );
  }
  return {
    rps: result['2xx'] / (result.duration || durationS),
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuUs: (used.user + used.system) / result['2xx'],
  };
}

async function listen(cleanup: Cleanup, server: http.Server, label: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  cleanup.defer(`${label} close`, async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const { port } = server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

/** The framework's limit: Express answering the same object with res.json, nothing else. */
function bareExpress(body: unknown): http.Server {
  const app = express();
  app.disable('x-powered-by');
  app.get('/v1/hosts/:host', (_req, res) => {
    res.json(body);
  });
  return http.createServer(app);
}

/** Node's own limit: node:http writing the same JSON, serialized per request. */
function bareNode(body: unknown): http.Server {
  return http.createServer((_req, res) => {
    const text = JSON.stringify(body);
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  });
}

export async function hostsRps(): Promise<BenchResult> {
  const s = settings();
  log(
    `== ${NAME}: GET /v1/hosts/${HOST}, ${s.connections} connections, ` +
      `${s.rounds} rounds of ${s.durationS}s per server, ${databaseLabel()} ==`,
  );
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    const lab = await benchLab(cleanup, 1);
    const api = await benchServer(cleanup, { INVENTORY: lab.inventoryPath });
    const auth = { authorization: `Bearer ${VIEWER_TOKEN}` };

    // One real gather fills the snapshot that every later request is served from.
    const gathered = await fetch(`${api.url}/v1/hosts/${HOST}?refresh=true`, { headers: auth });
    if (gathered.status !== 200) {
      throw new Error(`gather failed: ${gathered.status} ${await gathered.text()}`);
    }
    await gathered.arrayBuffer();
    const first = await fetch(`${api.url}/v1/hosts/${HOST}`, { headers: auth });
    const text = await first.text();
    if (first.status !== 200) throw new Error(`GET failed: ${first.status} ${text}`);
    const body = JSON.parse(text) as { state?: { routes?: unknown[] } };
    log(`snapshot: ${text.length} bytes, ${body.state?.routes?.length ?? 0} routes`);

    const targets = {
      api: `${api.url}/v1/hosts/${HOST}`,
      express: `${await listen(cleanup, bareExpress(body), 'bare express')}/v1/hosts/${HOST}`,
      node: `${await listen(cleanup, bareNode(body), 'bare node')}/v1/hosts/${HOST}`,
    };
    // The baselines must answer byte for byte what routeplane answers.
    for (const [name, url] of Object.entries(targets)) {
      const got = await (await fetch(url, { headers: auth })).text();
      if (got !== text) throw new Error(`${name} answers a different body than routeplane`);
    }

    const names = Object.keys(targets) as (keyof typeof targets)[];
    if (s.warmupS > 0) {
      for (const name of names) await load(targets[name], s, s.warmupS);
    }
    const samples: Record<keyof typeof targets, Load[]> = { api: [], express: [], node: [] };
    const startLoad = loadavg();
    for (let round = 1; round <= s.rounds; round++) {
      // Alternate the order so neither server always runs on a machine the other just heated.
      const ordered = round % 2 ? names : [...names].reverse();
      for (const name of ordered) samples[name].push(await load(targets[name], s, s.durationS));
      log(
        `round ${round}/${s.rounds}: ` +
          names
            .map((n) => {
              const last = samples[n].at(-1)!;
              return `${n} ${last.rps.toFixed(0)} req/s ${last.cpuUs.toFixed(0)} µs CPU/req`;
            })
            .join(', '),
      );
    }

    const med = (n: keyof typeof targets) => ({
      rps: median(samples[n].map((x) => x.rps)),
      p50: median(samples[n].map((x) => x.p50)),
      p99: median(samples[n].map((x) => x.p99)),
      cpuUs: median(samples[n].map((x) => x.cpuUs)),
    });
    const m = { api: med('api'), express: med('express'), node: med('node') };
    const rps = (x: number) => `${x.toFixed(0)} req/s`;
    log('');
    log(
      table([
        ['server', 'median', 'p50 latency', 'p99 latency', 'CPU per request', 'rounds (req/s)'],
        ...names.map((n) => [
          {
            api: 'routeplane (auth, validation, log, db)',
            express: 'bare Express',
            node: 'bare node:http',
          }[n],
          rps(m[n].rps),
          `${m[n].p50} ms`,
          `${m[n].p99} ms`,
          `${m[n].cpuUs.toFixed(0)} µs`,
          samples[n].map((x) => x.rps.toFixed(0)).join(' '),
        ]),
      ]),
    );
    // Each round measures the two servers one right after the other: the median of those
    // paired ratios follows the machine's changing load far less than a ratio of medians.
    const perRound = samples.api.map((x, i) => x.rps / samples.express[i]!.rps);
    const vsExpress = median(perRound);
    log('');
    log(
      `routeplane / bare Express = ${ratio(vsExpress)} (goal >= ${GOAL.toFixed(2)}x), median of rounds ` +
        `${perRound.map(ratio).join(' ')}; ratio of medians ${ratio(m.api.rps / m.express.rps)}`,
    );
    // CPU per request is the inverse of the rate a saturated core would serve.
    const perRoundCpu = samples.api.map((x, i) => samples.express[i]!.cpuUs / x.cpuUs);
    const cpuVsExpress = median(perRoundCpu);
    log(
      `routeplane / bare Express by CPU time per request = ${ratio(cpuVsExpress)}, median of rounds ` +
        `${perRoundCpu.map(ratio).join(' ')}`,
    );
    log(`load average during the rounds: ${startLoad} (start), ${loadavg()} (end)`);
    log(`routeplane / bare node:http = ${ratio(m.api.rps / m.node.rps)}`);
    log(`bare Express / bare node:http = ${ratio(m.express.rps / m.node.rps)}`);
    return {
      name: NAME,
      rows: [
        {
          what: `GET /v1/hosts/{host} vs bare Express, same body (${s.connections} conns)`,
          subject: rps(m.api.rps),
          baseline: rps(m.express.rps),
          ratio: vsExpress,
          goal: `>= ${GOAL.toFixed(2)}x`,
          met: vsExpress >= GOAL,
        },
        {
          what: 'GET /v1/hosts/{host} vs bare Express, by CPU time per request',
          subject: `${m.api.cpuUs.toFixed(0)} µs`,
          baseline: `${m.express.cpuUs.toFixed(0)} µs`,
          ratio: cpuVsExpress,
          goal: `>= ${GOAL.toFixed(2)}x`,
          met: cpuVsExpress >= GOAL,
        },
        {
          what: 'GET /v1/hosts/{host} vs bare node:http',
          subject: rps(m.api.rps),
          baseline: rps(m.node.rps),
          ratio: m.api.rps / m.node.rps,
        },
      ],
    };
  });
}

if (isMain(import.meta.url)) runAsScript(hostsRps);
