import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PlaybookRunner, RunHandle, RunOutcome } from '../../../src/runs/types.ts';
import { TOKENS, startTestServer, type TestServer } from '../../helpers/server.ts';

const INVENTORY = `all:
  children:
    lab:
      hosts:
        h1:
          ansible_host: 198.51.100.250
          ansible_user: root
`;

/** Starts no process; each run ends when the test releases it. */
class HeldRunner implements PlaybookRunner {
  started = 0;
  private readonly releases: ((o: RunOutcome) => void)[] = [];
  start(): RunHandle {
    this.started++;
    return {
      done: new Promise<RunOutcome>((r) => this.releases.push(r)),
      cancel: () => undefined,
    };
  }
  releaseAll(): void {
    for (const r of this.releases.splice(0)) {
      r({ status: 'failed', rc: 2, summary: {}, results: [], error: 'released', log: '' });
    }
  }
  version(): Promise<string> {
    return Promise.resolve('ansible-playbook [fake]');
  }
}

// A write counts as on its way from the moment its request arrives (x-changes-desired-state
// in openapi.yaml), so the reconciler's group commit waits for a bulk whose bodies are still
// being read, not only for open transactions.
describe('writes announced as they arrive, given a running server', () => {
  let server: TestServer;
  let dir: string;
  const runner = new HeldRunner();
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'routeplane-arriving-'));
    await writeFile(path.join(dir, 'hosts.yml'), INVENTORY);
    server = await startTestServer({ INVENTORY: path.join(dir, 'hosts.yml') }, { runner });
  });
  afterAll(async () => {
    runner.releaseAll();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Sends the headers and half of a body, and keeps the request open until `abort`. */
  async function halfSent(method: string, path: string) {
    const body = JSON.stringify({ host: 'h1', to: '192.0.2.0/24', via: '198.51.100.1' });
    const req = http.request(`${server.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${TOKENS.operator}`,
        'content-type': 'application/json',
        'content-length': String(body.length),
      },
    });
    req.on('error', () => undefined);
    req.write(body.slice(0, 10));
    await until(() => server.services.work.writesInFlight() > 0, 300);
    return {
      abort: async () => {
        req.destroy();
        await until(() => server.services.work.writesInFlight() === 0, 5_000);
      },
    };
  }

  async function until(ok: () => boolean, ms: number) {
    const deadline = Date.now() + ms;
    while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  it('when a route write is still sending its body, then it is in flight, and no longer once its request is gone', async () => {
    const w = await halfSent('POST', '/v1/routes');
    expect(server.services.work.writesInFlight()).toBe(1);
    await w.abort();
    expect(server.services.work.writesInFlight()).toBe(0);
  });

  it('when a compat write is still sending its body, then it is in flight too', async () => {
    const w = await halfSent('PUT', '/routes/');
    expect(server.services.work.writesInFlight()).toBe(1);
    await w.abort();
  });

  it('when a request that records no route change is still sending (a catalog run), then nothing is in flight', async () => {
    const w = await halfSent('POST', '/v1/runs');
    expect(server.services.work.writesInFlight()).toBe(0);
    await w.abort();
  });

  it('when a write is refused (an unknown host), then it is no longer in flight once answered', async () => {
    const res = await server.request('POST', '/v1/routes', {
      token: 'operator',
      body: { host: 'no-such-host', to: '192.0.2.0/24', via: '198.51.100.1' },
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    await until(() => server.services.work.writesInFlight() === 0, 1_000);
    expect(server.services.work.writesInFlight()).toBe(0);
  });

  it('when a write has committed and its answer waits for the kernel, then it is no longer in flight', async () => {
    const answer = server.request('POST', '/v1/routes?wait=30', {
      token: 'operator',
      body: { host: 'h1', to: '192.0.2.0/24', via: '198.51.100.1' },
    });
    await until(() => runner.started > 0, 5_000);
    expect(runner.started).toBe(1);
    expect(server.services.work.writesInFlight()).toBe(0);
    runner.releaseAll();
    expect((await answer).status).toBeGreaterThanOrEqual(200);
  });
});
