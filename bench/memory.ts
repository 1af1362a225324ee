// How much memory does an idle server hold? The real server (`node --import tsx src/server.ts`,
// a process of its own so /proc/<pid>/status is its own) on a fresh temp DATA_DIR (first start:
// the embedded database is created), then restarted on the same dir, then on Postgres. Each
// time: wait for /readyz, stay idle a few seconds, read VmRSS and VmHWM (peak). Prints each
// idle RSS against the 400 MiB goal; never fails on figures.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import {
  onPostgres,
  ADMIN_TOKEN,
  CATALOG_DIR,
  PLAYBOOKS_DIR,
  REPO,
  envInt,
  isMain,
  log,
  runAsScript,
  table,
  tempDir,
  withCleanup,
  type BenchResult,
  type BenchRow,
  type Cleanup,
} from './lib.ts';

const NAME = 'memory';
const DEADLINE_MS = 290_000;
const GOAL_MIB = 400;
const READY_MS = 120_000;
const DEFAULT_POSTGRES = 'postgres://postgres@127.0.0.1:5432/postgres';

interface Sample {
  label: string;
  backend: string;
  readyMs: number;
  /** RSS as /readyz first answers, before the idle wait. */
  readyRssMib: number;
  rssMib: number;
  hwmMib: number;
}

async function procStatus(pid: number): Promise<{ rssMib: number; hwmMib: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(m[1]) / 1024;
  };
  return { rssMib: kib('VmRSS'), hwmMib: kib('VmHWM') };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Spawned {
  child: ChildProcess;
  url: Promise<string>;
  exited: Promise<void>;
  tail: string[];
}

// PORT=0: the server picks its port and logs it (server.listening), so no probing race.
function spawnServer(env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: REPO,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LANG: process.env.LANG ?? 'C.UTF-8',
      PORT: '0',
      HOST: '127.0.0.1',
      API_TOKENS: `bench-admin:admin:${ADMIN_TOKEN}`,
      PLAYBOOKS_DIR,
      CATALOG_DIR,
      LOG_LEVEL: 'info',
      CONVERGE_INTERVAL_S: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  let resolveUrl!: (u: string) => void;
  const url = new Promise<string>((r) => (resolveUrl = r));
  const collect = (chunk: Buffer) => {
    for (const line of String(chunk).split('\n').filter(Boolean)) {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      try {
        const e = JSON.parse(line) as { event?: string; port?: number };
        if (e.event === 'server.listening' && e.port) resolveUrl(`http://127.0.0.1:${e.port}`);
      } catch {
        // not a log line of ours
      }
    }
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { child, url, exited, tail };
}

async function stopServer(s: Spawned): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  s.child.kill('SIGTERM');
  const gone = await Promise.race([s.exited.then(() => true), sleep(30_000).then(() => false)]);
  if (!gone) {
    s.child.kill('SIGKILL');
    await s.exited;
  }
}

/** Starts a server, waits for /readyz, idles, samples its memory and stops it. */
async function measure(
  cleanup: Cleanup,
  label: string,
  backend: string,
  env: Record<string, string>,
  idleMs: number,
): Promise<Sample> {
  const started = performance.now();
  const s = spawnServer(env);
  cleanup.defer(`stop server (${label})`, () => stopServer(s));
  let exitedEarly = false;
  void s.exited.then(() => (exitedEarly = true));
  const fail = (why: string) => new Error(`${label}: ${why}\n${s.tail.join('\n')}`);
  const url = await Promise.race([
    s.url,
    s.exited.then(() => Promise.reject(fail('server exited during start-up'))),
    sleep(READY_MS).then(() => Promise.reject(fail(`not listening after ${READY_MS} ms`))),
  ]);
  for (;;) {
    if (exitedEarly) throw fail('server exited before it was ready');
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (performance.now() - started > READY_MS) throw fail(`/readyz not 200 after ${READY_MS} ms`);
    await sleep(100);
  }
  const readyMs = performance.now() - started;
  // RSS once a second while idle: whether it still moves says if the wait was long enough.
  const trace = [(await procStatus(s.child.pid!)).rssMib];
  for (let waited = 0; waited < idleMs; waited += 1000) {
    await sleep(Math.min(1000, idleMs - waited));
    trace.push((await procStatus(s.child.pid!)).rssMib);
  }
  const mem = await procStatus(s.child.pid!);
  const stopping = performance.now();
  await stopServer(s);
  const stopMs = performance.now() - stopping;
  const sample = { label, backend, readyMs, readyRssMib: trace[0]!, ...mem };
  log(
    `  ${label}: ready after ${(readyMs / 1000).toFixed(1)} s, idle RSS ${mib(mem.rssMib)}, ` +
      `peak ${mib(mem.hwmMib)}, stopped in ${(stopMs / 1000).toFixed(1)} s; ` +
      `RSS (MiB) each second from ready: ${trace.map((x) => x.toFixed(0)).join(' ')}`,
  );
  return sample;
}

const mib = (x: number) => `${x.toFixed(0)} MiB`;

/** A throwaway database on the Postgres server, dropped by cleanup; undefined if unreachable. */
async function postgresDatabase(cleanup: Cleanup): Promise<string | undefined> {
  const admin = process.env.BENCH_DATABASE_URL || DEFAULT_POSTGRES;
  const name = `rp_bench_mem_${process.pid}_${randomBytes(4).toString('hex')}`;
  try {
    await onPostgres(admin, `create database ${name}`);
  } catch (err) {
    log(`  Postgres at ${new URL(admin).host} unavailable (${(err as Error).message}): skipped`);
    return undefined;
  }
  cleanup.defer(`drop database ${name}`, () =>
    onPostgres(admin, `drop database if exists ${name} with (force)`),
  );
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return url.toString();
}

function goalRow(what: string, s: Sample): BenchRow {
  const ratio = s.rssMib / GOAL_MIB;
  return {
    what,
    subject: mib(s.rssMib),
    baseline: `${GOAL_MIB} MiB`,
    ratio,
    goal: '≤ 1.00x',
    met: ratio <= 1,
  };
}

export async function memory(): Promise<BenchResult> {
  const idleMs = envInt('BENCH_IDLE_S', 30, 0, 120) * 1000;
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    log(`${NAME}: idle server memory (VmRSS, VmHWM), ${idleMs / 1000} s idle after /readyz`);
    const dataDir = await tempDir(cleanup, 'memory');
    const first = await measure(
      cleanup,
      'PGlite, first start',
      'pglite',
      { DATA_DIR: dataDir },
      idleMs,
    );
    const again = await measure(
      cleanup,
      'PGlite, restart',
      'pglite',
      { DATA_DIR: dataDir },
      idleMs,
    );
    const samples = [first, again];
    const databaseUrl = await postgresDatabase(cleanup);
    let postgres: Sample | undefined;
    if (databaseUrl) {
      const pgDataDir = await tempDir(cleanup, 'memory-pg');
      postgres = await measure(
        cleanup,
        'Postgres',
        'postgres',
        { DATA_DIR: pgDataDir, DATABASE_URL: databaseUrl },
        idleMs,
      );
      samples.push(postgres);
    }
    log('');
    log(
      table([
        [
          'start',
          'ready after',
          'RSS at ready',
          `idle RSS (${idleMs / 1000} s)`,
          'peak (VmHWM)',
          `idle RSS / ${GOAL_MIB} MiB`,
        ],
        ...samples.map((s) => [
          s.label,
          `${(s.readyMs / 1000).toFixed(1)} s`,
          mib(s.readyRssMib),
          mib(s.rssMib),
          mib(s.hwmMib),
          `${(s.rssMib / GOAL_MIB).toFixed(2)}x`,
        ]),
      ]),
    );
    const rows: BenchRow[] = [
      goalRow('idle RSS, first start on embedded PGlite', first),
      goalRow('idle RSS, restart on embedded PGlite', again),
      {
        what: 'peak RSS (VmHWM), first start on PGlite',
        subject: mib(first.hwmMib),
        baseline: `${GOAL_MIB} MiB`,
        ratio: first.hwmMib / GOAL_MIB,
      },
    ];
    if (postgres) {
      rows.push(
        {
          what: 'idle RSS, Postgres (for comparison)',
          subject: mib(postgres.rssMib),
          baseline: `${GOAL_MIB} MiB`,
          ratio: postgres.rssMib / GOAL_MIB,
        },
        {
          what: 'idle RSS, PGlite first start vs Postgres',
          subject: mib(first.rssMib),
          baseline: mib(postgres.rssMib),
          ratio: first.rssMib / postgres.rssMib,
        },
      );
    }
    return { name: NAME, rows };
  });
}

if (isMain(import.meta.url)) runAsScript(memory);
