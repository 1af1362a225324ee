import { afterEach, describe, expect, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import { expectNothingLeft, runWhen, spawnedRun } from '../../helpers/runs.ts';
import { spawnServer, type ServerProcess } from '../../helpers/server-process.ts';

// The server process as production runs it, on its embedded default: PGlite in DATA_DIR (no
// DATABASE_URL), so a restart on the same directory also shows what was recorded on disk.
const T = 120_000;

describe('SIGTERM, on the embedded PGlite default and a lab of 1 host', { timeout: T }, () => {
  const fleet = useLab(1);
  const servers: ServerProcess[] = [];
  const start = async (env: Record<string, string> = {}) => {
    const s = await spawnServer({
      DATABASE_URL: '',
      INVENTORY: fleet.lab.inventoryPath,
      ...env,
    });
    servers.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of servers.splice(0)) {
      await s.kill();
      s.cleanup();
    }
  });

  it('when a run outlasts SHUTDOWN_GRACE_S, then it is canceled, leaves nothing behind, and the process exits 0', async () => {
    const server = await start({ SHUTDOWN_GRACE_S: '1' });
    const res = await server.request('POST', '/v1/runs', {
      body: { playbook: 'pause', limit: ['h1'] },
    });
    expect(res.status, res.text).toBe(202);
    const spawned = await spawnedRun(server, res.body.id);

    await server.stop(30_000);
    expect(server.exitCode()).toBe(0);
    expect(await expectNothingLeft(spawned)).toEqual({
      group: [],
      mentioning: [],
      workspaceExists: false,
    });
    const events = server.logs.map((l) => JSON.parse(l) as { event?: string });
    expect(events.map((e) => e.event)).toEqual(
      expect.arrayContaining(['server.stopping', 'server.stopped']),
    );

    // The same DATA_DIR again: the run was recorded as canceled, not left running.
    const again = await start({ DATA_DIR: server.dataDir });
    const run = await again.request('GET', `/v1/runs/${res.body.id}`, { token: 'viewer' });
    expect(run.status).toBe(200);
    expect(run.body).toMatchObject({ status: 'canceled', playbook: 'pause', hosts: ['h1'] });
    expect(run.body.finished_at).not.toBeNull();
  });

  it('when a run ends within SHUTDOWN_GRACE_S, then it finishes succeeded before the process exits 0', async () => {
    const server = await start({ SHUTDOWN_GRACE_S: '60' });
    const res = await server.request('POST', '/v1/runs', {
      body: { playbook: 'ping', limit: ['h1'] },
    });
    expect(res.status, res.text).toBe(202);
    await spawnedRun(server, res.body.id);

    await server.stop(90_000);
    expect(server.exitCode()).toBe(0);

    const again = await start({ DATA_DIR: server.dataDir });
    const run = await runWhen(again, res.body.id, (r) => r.status !== 'running', 5_000);
    expect(run).toMatchObject({ status: 'succeeded', summary: { h1: { status: 'ok' } } });
  });
});
