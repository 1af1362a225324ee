import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, inject } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import type { PlaybookRunner } from '../../src/runs/types.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';

export const TOKENS = {
  viewer: 'viewer-token-0123456789',
  operator: 'operator-token-0123456789',
  admin: 'admin-token-0123456789',
} as const;

export const REPO = path.resolve(import.meta.dirname, '../..');
export const FIXTURE_CATALOG = path.join(REPO, 'tests/fixtures/catalog');

export interface TestServer extends RunningServer {
  database: TestDatabase;
  dataDir: string;
  /** Every log line the server wrote, for assertions on what is (not) logged. */
  logs: string[];
  request(method: string, url: string, opts?: RequestOptions): Promise<TestResponse>;
  close(): Promise<void>;
}

export interface RequestOptions {
  token?: keyof typeof TOKENS | null;
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
}

export interface TestResponse {
  status: number;
  headers: Headers;
  text: string;
  // Tests assert on arbitrary shapes; the contract check is the server's response validation.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

export async function startTestServer(
  env: Record<string, string> = {},
  opts: {
    runner?: PlaybookRunner;
    /** A database the test made (and drops) itself, e.g. to seed rows before start-up. */
    database?: TestDatabase;
  } = {},
): Promise<TestServer> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'routeplane-test-data-'));
  const ownsDatabase = opts.database === undefined;
  const database = opts.database ?? (await createTestDatabase(inject('templateDatabase')));
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    API_TOKENS: Object.entries(TOKENS)
      .map(([role, t]) => `${role}:${role}:${t}`)
      .join(','),
    CATALOG_DIR: FIXTURE_CATALOG,
    PLAYBOOKS_DIR: path.join(REPO, 'playbooks'),
    INVENTORY: path.join(REPO, 'inventory/hosts.yml'),
    VALIDATE_RESPONSES: 'true',
    LOG_LEVEL: 'debug',
    RUN_CANCEL_GRACE_S: '2',
    // Tests change a host and refresh at once; the storm test sets its own interval.
    REFRESH_MIN_INTERVAL_S: '0',
    // Background convergence is off in tests unless a test turns it on.
    CONVERGE_INTERVAL_S: '0',
    WATCH_HOSTS: 'false',
    FAILOVER_CHECKS: 'false',
    ...env,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const running = await startServer(config, {
    db: database.db,
    runner: opts.runner,
    logger: createLogger('debug', sink),
  });
  const request = requester(running.url);
  return {
    ...running,
    database,
    dataDir,
    logs,
    request,
    close: async () => {
      await running.stop();
      if (ownsDatabase) await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** request() against a base URL, with the test tokens (admin unless told otherwise). */
export function requester(
  baseUrl: string,
): (method: string, url: string, o?: RequestOptions) => Promise<TestResponse> {
  return async (method, url, o = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    const token = o.token === undefined ? 'admin' : o.token;
    if (token) headers.authorization = `Bearer ${TOKENS[token]}`;
    let body: string | undefined = o.rawBody;
    if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(baseUrl + url, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, headers: res.headers, text, body: parsed };
  };
}

/**
 * A test server for the enclosing describe block: started in beforeAll with `env()` (read
 * then, so it may name a lab made by an earlier beforeAll), closed in afterAll. The value
 * stands for the running server; using it outside those hooks' span throws.
 */
export function useTestServer(env: () => Record<string, string>, timeoutMs = 120_000): TestServer {
  let current: TestServer | undefined;
  beforeAll(async () => {
    current = await startTestServer(env());
  }, timeoutMs);
  afterAll(async () => {
    await current?.close();
    current = undefined;
  }, timeoutMs);
  return new Proxy({} as TestServer, {
    get(_target, key) {
      if (!current) throw new Error('no server: useTestServer() is up between its hooks only');
      const value = Reflect.get(current, key) as unknown;
      return typeof value === 'function' ? value.bind(current) : value;
    },
  });
}
