import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CountingRunner } from '../../helpers/runs.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

// No ansible: a counting runner stands in, so "nothing was stored or run" is a number to check.
const INVENTORY = '[fleet]\nh[001:500]\n\n[pair]\nh001\nh002\n';

describe('the number of routes one request may create', () => {
  const runner = new CountingRunner();
  let dir: string;
  let server: TestServer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'batch-limits-'));
    await writeFile(path.join(dir, 'hosts'), INVENTORY);
    server = await startTestServer(
      { INVENTORY: path.join(dir, 'hosts'), MAX_BATCH_ITEMS: '1000' },
      { runner },
    );
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const items = (host: string, n: number) =>
    Array.from({ length: n }, (_, i) => ({
      host,
      to: `203.0.${113 + Math.floor(i / 256)}.${i % 256}/32`,
      dev: 'eth0',
    }));
  const stored = async () => Number((await server.database.db.knex('routes').count())[0]!.count);

  it('when items times the hosts of their group exceed MAX_BATCH_ITEMS, then 413 names the setting and nothing is stored or run', async () => {
    const res = await server.request('POST', '/v1/routes?wait=0', { body: items('fleet', 3) });
    expect(res.status, res.text).toBe(413);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body.detail).toMatch(/1500 routes .*MAX_BATCH_ITEMS \(1000\)/);
    expect(await stored()).toBe(0);
    expect(runner.specs).toEqual([]);
  });

  it('when PUT expands past the limit too, then 413 and nothing is stored', async () => {
    const res = await server.request('PUT', '/v1/routes?wait=0', { body: items('fleet', 3) });
    expect(res.status, res.text).toBe(413);
    expect(await stored()).toBe(0);
  });

  it('when the expanded count is exactly the limit, then the request is accepted', async () => {
    const res = await server.request('POST', '/v1/routes?wait=0', { body: items('pair', 500) });
    expect([201, 202]).toContain(res.status);
    expect(await stored()).toBe(1000);
  });
});
