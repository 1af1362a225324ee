import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { sleep } from './runs.ts';
import {
  FIXTURE_CATALOG,
  REPO,
  requester,
  TOKENS,
  type RequestOptions,
  type TestResponse,
} from './server.ts';

/** A port nothing listens on right now: bind 0, read it, let it go. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** A routeplane server running as a process of its own (`node --import tsx src/server.ts`). */
export interface ServerProcess {
  pid: number;
  url: string;
  dataDir: string;
  /** stdout and stderr lines (pino JSON, mostly). */
  logs: string[];
  request(method: string, url: string, opts?: RequestOptions): Promise<TestResponse>;
  /** kill -9, and wait until it is gone. */
  kill(): Promise<void>;
  /** SIGTERM (graceful shutdown), waiting at most `ms` before kill -9. */
  stop(ms?: number): Promise<void>;
  /** The exit code once the process has exited (null: still running, or killed by a signal). */
  exitCode(): number | null;
  /** Removes the data dir (unless the caller passed DATA_DIR). */
  cleanup(): void;
}

const STARTUP_MS = 60_000;

/**
 * Spawns a server with the test tokens, the lab's inventory and `env` (DATABASE_URL, ...), and
 * waits until it answers /healthz. PORT is picked here: the child is told a free port.
 */
export async function spawnServer(env: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort();
  const ownDataDir = env.DATA_DIR === undefined;
  const dataDir = env.DATA_DIR ?? mkdtempSync(path.join(os.tmpdir(), 'routeplane-proc-data-'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: REPO,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LANG: process.env.LANG ?? 'C.UTF-8',
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      API_TOKENS: Object.entries(TOKENS)
        .map(([role, t]) => `${role}:${role}:${t}`)
        .join(','),
      CATALOG_DIR: FIXTURE_CATALOG,
      PLAYBOOKS_DIR: path.join(REPO, 'playbooks'),
      LOG_LEVEL: 'info',
      RUN_CANCEL_GRACE_S: '2',
      // Tests change a host and refresh at once; the storm test sets its own interval.
      REFRESH_MIN_INTERVAL_S: '0',
      // Background convergence is off in tests unless a test turns it on.
      CONVERGE_INTERVAL_S: '0',
      WATCH_HOSTS: 'false',
      FAILOVER_CHECKS: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const collect = (chunk: Buffer) => logs.push(...String(chunk).split('\n').filter(Boolean));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const url = `http://127.0.0.1:${port}`;

  const waitExit = async (ms: number) => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exit, new Promise((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
    return exited;
  };
  const kill = async () => {
    if (exited) return;
    child.kill('SIGKILL');
    await exit;
  };

  const deadline = Date.now() + STARTUP_MS;
  for (;;) {
    if (exited) throw new Error(`server exited during start-up:\n${logs.join('\n')}`);
    const ok = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await kill();
      throw new Error(`server not up after ${STARTUP_MS} ms:\n${logs.join('\n')}`);
    }
    await sleep(100);
  }

  return {
    pid: child.pid!,
    url,
    dataDir,
    logs,
    request: requester(url),
    kill,
    exitCode: () => child.exitCode,
    async stop(ms = 30_000) {
      if (exited) return;
      child.kill('SIGTERM');
      if (!(await waitExit(ms))) await kill();
    },
    cleanup() {
      if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The pid the server logged for a run's ansible-playbook (its process group id), if any. */
export function spawnedPid(logs: string[], runId: string): number | undefined {
  for (const line of logs) {
    try {
      const e = JSON.parse(line) as { event?: string; run_id?: string; pid?: number };
      if (e.event === 'run.spawned' && e.run_id === runId) return e.pid;
    } catch {
      // not a log line of ours
    }
  }
  return undefined;
}
