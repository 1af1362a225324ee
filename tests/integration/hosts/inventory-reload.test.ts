import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';
import { sleep } from '../../helpers/runs.ts';
import { spawnServer, type ServerProcess } from '../../helpers/server-process.ts';

// An inventory script (Ansible's script plugin) whose answer changes while its own file does
// not: no digest sees it, and SIGHUP is how an operator says "read the fleet again".
const T = 120_000;

const fleet = (names: string[]) =>
  JSON.stringify({ lab: { hosts: names }, _meta: { hostvars: {} } });

describe('the server re-reads the inventory on SIGHUP', { timeout: T }, () => {
  let dir: string;
  let database: TestDatabase;
  let server: ServerProcess;
  const names = async () =>
    (
      (await server.request('GET', '/v1/hosts', { token: 'viewer' })).body.items as {
        name: string;
      }[]
    ).map((h) => h.name);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'inventory-reload-'));
    const data = path.join(dir, 'fleet.json');
    await writeFile(data, fleet(['s1', 's2']));
    const script = path.join(dir, 'inventory.sh');
    await writeFile(
      script,
      `#!/bin/sh\nif [ "$1" = "--list" ]; then cat '${data}'; else echo '{}'; fi\n`,
    );
    await chmod(script, 0o755);
    database = await createTestDatabase(inject('templateDatabase'));
    server = await spawnServer({
      ...(database.url ? { DATABASE_URL: database.url } : {}),
      INVENTORY: script,
    });
  }, T);

  afterAll(async () => {
    await server?.stop();
    server?.cleanup();
    await database?.drop();
    await rm(dir, { recursive: true, force: true });
  }, T);

  it('when the server starts on an inventory script, then the fleet is what the script says', async () => {
    expect(await names()).toEqual(['s1', 's2']);
  });

  it('when the script answers differently but no inventory file changed, then the fleet stays as read', async () => {
    await writeFile(path.join(dir, 'fleet.json'), fleet(['s1', 's2', 's3']));
    await sleep(400);
    expect(await names()).toEqual(['s1', 's2']);
  });

  it('when the server gets SIGHUP, then the next request sees the new fleet', async () => {
    process.kill(server.pid, 'SIGHUP');
    for (let i = 0; i < 100 && (await names()).length !== 3; i++) await sleep(200);
    expect(await names()).toEqual(['s1', 's2', 's3']);
    expect(server.logs.some((l) => l.includes('"event":"inventory.reload"'))).toBe(true);
  });
});
