// Shared plumbing for the benchmarks: timing statistics, cleanup that also runs on signals,
// a deadline per benchmark, a lab and a routeplane server configured the way production is.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../src/config.ts';
import { labDown, labUp, type Lab } from '../src/lab/index.ts';
import { createLogger, type Logger } from '../src/logger.ts';
import { procCpu } from './proc-cpu.ts';
import { startServer, type RunningServer } from '../src/server.ts';

export const REPO = path.resolve(import.meta.dirname, '..');
export const PLAYBOOKS_DIR = path.join(REPO, 'playbooks');
export const CATALOG_DIR = path.join(PLAYBOOKS_DIR, 'catalog');

/** What a benchmark hands back to run-all for the summary table. */
export interface BenchResult {
  name: string;
  /** One line per measured quantity, the headline comparison first. */
  rows: BenchRow[];
}

export interface BenchRow {
  what: string;
  subject: string;
  baseline: string;
  ratio: number;
  goal?: string;
  met?: boolean;
}

export function envInt(name: string, def: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name} must be an integer ${min}..${max}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The nearest-rank percentile `p` (0-100) of `xs`; NaN for no samples. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export const ms = (x: number) => `${x.toFixed(0)} ms`;
export const ratio = (x: number) => `${x.toFixed(2)}x`;

export function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Fixed-width text table; the first row is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)]
    .map((l) => `  ${l}`)
    .join('\n');
}

/**
 * A stack of undo actions. `run()` executes them newest first, each once, even if some fail;
 * SIGINT/SIGTERM run them too before the process exits, so an interrupted benchmark leaves no
 * lab, server or temp dir behind.
 */
export class Cleanup {
  private readonly actions: { label: string; fn: () => Promise<void> }[] = [];
  private running: Promise<void> | null = null;
  private readonly onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: cleaning up before exit\n`);
    void this.run().finally(() => process.exit(130));
  };

  constructor() {
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
  }

  defer(label: string, fn: () => Promise<void>): void {
    this.actions.push({ label, fn });
  }

  run(): Promise<void> {
    return (this.running ??= (async () => {
      while (this.actions.length > 0) {
        const { label, fn } = this.actions.pop()!;
        try {
          await fn();
        } catch (err) {
          process.stderr.write(`cleanup (${label}) failed: ${(err as Error).message}\n`);
        }
      }
      process.off('SIGINT', this.onSignal);
      process.off('SIGTERM', this.onSignal);
    })());
  }
}

/** Runs body with a fresh Cleanup, bounded by a deadline; cleanup always runs. */
export async function withCleanup<T>(
  name: string,
  deadlineMs: number,
  body: (cleanup: Cleanup) => Promise<T>,
): Promise<T> {
  const cleanup = new Cleanup();
  log(`machine: ${os.cpus().length} cpus, load average ${loadavg()} (at start)`);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${name}: gave up after ${deadlineMs / 1000}s`)),
      deadlineMs,
    );
  });
  try {
    return await Promise.race([body(cleanup), deadline]);
  } finally {
    clearTimeout(timer);
    await cleanup.run();
    log(`machine: load average ${loadavg()} (at end)`);
  }
}

/** 1, 5 and 15 minute load averages: anything near or above the cpu count means noise. */
export function loadavg(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
}

/** Resident memory of a process from /proc/<pid>/status, in MiB: now (VmRSS) and peak (VmHWM). */
export async function rssMiB(
  pid: number | 'self' = 'self',
): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/**
 * Starts a new peak for `rssMiB` (VmHWM back to the current RSS; Linux's clear_refs 5), so a
 * phase's peak is its own and not start-up's. False when the kernel does not allow it.
 */
export async function resetPeakRss(pid: number | 'self' = 'self'): Promise<boolean> {
  return writeFile(`/proc/${pid}/clear_refs`, '5').then(
    () => true,
    () => false,
  );
}

export const mib = (x: number) => `${x.toFixed(0)} MiB`;

/**
 * CPU seconds from /proc/<pid>/stat: the process's own (utime + stime) and its reaped
 * children's (cutime + cstime: an ansible-playbook run and its forks count once it has exited).
 */
export async function cpuSeconds(
  pid: number | 'self' = 'self',
): Promise<{ own: number; children: number }> {
  const p = await procCpu(pid);
  if (!p) throw new Error(`no process ${pid}`);
  return { own: p.own, children: p.children };
}

/** The pids of this process's children whose command line contains `text`. */
export async function childPids(text: string): Promise<number[]> {
  const kids = await readFile(`/proc/self/task/${process.pid}/children`, 'utf8').catch(() => '');
  const found: number[] = [];
  for (const pid of kids.split(' ').filter(Boolean).map(Number)) {
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(text)) found.push(pid);
  }
  return found;
}

export async function tempDir(cleanup: Cleanup, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `routeplane-bench-${prefix}-`));
  cleanup.defer(`rm ${dir}`, () => rm(dir, { recursive: true, force: true, maxRetries: 3 }));
  return dir;
}

/** A lab of `count` hosts under the default lab root, taken down by cleanup. */
export async function benchLab(cleanup: Cleanup, count: number): Promise<Lab> {
  const lab = await labUp({ count });
  cleanup.defer(`lab ${lab.id} down`, () => labDown({ id: lab.id }));
  return lab;
}

export const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';
export const VIEWER_TOKEN = 'bench-viewer-token-0123456789abcdef';

/**
 * Logs as production does (pino at info, one line per request, written synchronously to a
 * file descriptor) but into /dev/null, so the benchmark's own output stays readable.
 */
export function productionLikeLogger(): Logger {
  // SonicBoom, pino's own fd writer, is what pino uses for stdout; createLogger takes any stream.
  const devNull = pino.destination({ dest: '/dev/null', sync: true });
  return createLogger('info', devNull as unknown as NodeJS.WritableStream);
}

/** Runs one statement on a Postgres server (create or drop a benchmark's database). */
export async function onPostgres(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * With BENCH_DATABASE_URL (a Postgres server's maintenance database, e.g.
 * postgres://postgres@127.0.0.1:5432/postgres), a throwaway database of the benchmark's own,
 * dropped by cleanup; without it, undefined (embedded PGlite in the data dir).
 */
async function benchDatabaseUrl(cleanup: Cleanup): Promise<string | undefined> {
  const admin = process.env.BENCH_DATABASE_URL;
  if (!admin) return undefined;
  const name = `rp_bench_${process.pid}_${randomBytes(4).toString('hex')}`;
  await onPostgres(admin, `create database ${name}`);
  cleanup.defer(`drop database ${name}`, () =>
    onPostgres(admin, `drop database if exists ${name} with (force)`),
  );
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return url.toString();
}

export function databaseLabel(): string {
  return process.env.BENCH_DATABASE_URL ? 'Postgres (BENCH_DATABASE_URL)' : 'embedded PGlite';
}

/**
 * routeplane as `npm start` would run it: startServer with loadConfig. PGlite in a temp data dir,
 * or Postgres from BENCH_DATABASE_URL. Response validation stays off, its production default.
 */
export async function benchServer(
  cleanup: Cleanup,
  env: Record<string, string>,
  opts: { logger?: Logger } = {},
): Promise<RunningServer> {
  const dataDir = await tempDir(cleanup, 'data');
  const databaseUrl = await benchDatabaseUrl(cleanup);
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl ?? '',
    API_TOKENS: `bench-admin:admin:${ADMIN_TOKEN},bench-viewer:viewer:${VIEWER_TOKEN}`,
    PLAYBOOKS_DIR,
    CATALOG_DIR,
    SHUTDOWN_GRACE_S: '5',
    RUN_CANCEL_GRACE_S: '2',
    RUN_TIMEOUT_S: '120',
    // Benchmarks flush kernels and run bare apply runs behind the server's back between their
    // phases: periodic convergence would repair that mid-measurement (and add runs of its own),
    // and so would the watchers' drift repair; the live-state benches turn watching on.
    CONVERGE_INTERVAL_S: '0',
    WATCH_HOSTS: 'false',
    FAILOVER_CHECKS: 'false',
    ...env,
  });
  const server = await startServer(config, { logger: opts.logger ?? productionLikeLogger() });
  cleanup.defer('server stop', () => server.stop());
  return server;
}

/** True when `importMetaUrl` is the module node was started with (`tsx bench/x.ts`). */
export function isMain(importMetaUrl: string): boolean {
  return (
    Boolean(process.argv[1]) && fileURLToPath(importMetaUrl) === path.resolve(process.argv[1]!)
  );
}

/** Runs a benchmark as a script: prints its result, exit code 1 only if it could not run. */
export function runAsScript(fn: () => Promise<BenchResult>): void {
  fn().then(
    (result) => {
      log('');
      log(renderSummary([result]));
    },
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

export function renderSummary(results: BenchResult[]): string {
  const rows = [['benchmark', 'comparison', 'subject', 'baseline', 'ratio', 'goal']];
  for (const r of results) {
    for (const row of r.rows) {
      const goal = row.goal ? `${row.goal} ${row.met ? '(met)' : '(NOT met)'}` : '-';
      rows.push([r.name, row.what, row.subject, row.baseline, ratio(row.ratio), goal]);
    }
  }
  return `Summary (ratios from one run; machines are noisy)\n${table(rows)}`;
}
