import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import {
  eventually,
  expectNothingLeft,
  processesMentioning,
  runWhen,
  sleep,
  spawnedRun,
  spawnedRunIds,
  type SpawnedRun,
} from '../../helpers/runs.ts';
import { FIXTURE_CATALOG, startTestServer, type TestServer } from '../../helpers/server.ts';

// pause.yml pings (so an SSH master exists), then pauses for this long on the controller:
// far longer than any test waits, so only cancel or the timeout can end it.
const PAUSE_S = Number(
  /seconds:\s*(\d+)/.exec(readFileSync(path.join(FIXTURE_CATALOG, 'pause.yml'), 'utf8'))![1],
);
const T = 60_000;
const NOTHING_LEFT = { group: [], mentioning: [], workspaceExists: false };
// A run's SSH masters are its own (in its ControlPath dir, closed when it ends) only when they
// are not kept across runs; kept masters are the warm-runner tests' (warm-runner.test.ts).
const OWN_MASTERS = { SSH_MASTER_IDLE_S: '0' };

/** Starts pause.yml on h1 and returns once it is past its ping, holding an SSH master. */
async function startPause(server: TestServer, extravars: Record<string, unknown> = {}) {
  const res = await server.request('POST', '/v1/runs', {
    body: { playbook: 'pause', limit: ['h1'], extravars },
  });
  expect(res.status, res.text).toBe(202);
  const spawned = await spawnedRun(server, res.body.id);
  const masters = await sshMasters(spawned);
  return { id: res.body.id as string, spawned, masters };
}

/** The run's ControlPersist masters: ssh processes naming a socket in its ControlPath dir. */
async function sshMasters(spawned: SpawnedRun): Promise<string[]> {
  const cp = path.join(spawned.workspace, 'cp');
  return eventually(
    'an SSH master in the run ControlPath dir',
    async () => {
      const sockets = await readdir(cp).catch(() => []);
      if (sockets.length === 0) return undefined;
      const procs = await processesMentioning(cp);
      return procs.length > 0 ? procs : undefined;
    },
    20_000,
  );
}

describe('canceling and timing out runs, on a lab of 1 host', { timeout: T }, () => {
  const fleet = useLab(1);

  it('pause.yml pauses far longer than the tests wait', () => {
    expect(PAUSE_S).toBeGreaterThanOrEqual(60);
  });

  describe('with default limits', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath, ...OWN_MASTERS });
    }, T);
    afterAll(async () => {
      await server?.close();
    }, T);

    it('when a running run is canceled, then it ends canceled and leaves no process, no SSH master and no temp dir', async () => {
      const { id, spawned, masters } = await startPause(server);
      expect(masters.length).toBeGreaterThan(0);
      const res = await server.request('POST', `/v1/runs/${id}/cancel`, { token: 'operator' });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ id, status: 'canceled', error: 'canceled on request' });
      expect(res.body.finished_at).not.toBeNull();
      expect(await expectNothingLeft(spawned)).toEqual(NOTHING_LEFT);
      const row = await server.database.db.knex('runs').where({ id }).first();
      expect(row.status).toBe('canceled');
    });

    it('while a run is running, then its temp dir is private, holds extravars outside argv, and nothing from outside the catalog', async () => {
      const marker = 'marker-3c1f0a9e';
      const { id, spawned } = await startPause(server, { marker });
      try {
        expect((await stat(spawned.workspace)).mode & 0o777).toBe(0o700);
        const extravars = path.join(spawned.workspace, 'extravars.json');
        expect((await stat(extravars)).mode & 0o777).toBe(0o600);
        expect(JSON.parse(readFileSync(extravars, 'utf8'))).toEqual({
          marker: { __ansible_unsafe: marker },
        });
        expect(await processesMentioning(marker)).toEqual([]);
        // escape.yml is a symlink to /etc/passwd: the run's copy of the catalog must skip it
        const project = await readdir(path.join(spawned.workspace, 'project'));
        expect(project).toContain('pause.yml');
        expect(project).not.toContain('escape.yml');
      } finally {
        await server.request('POST', `/v1/runs/${id}/cancel`, { token: 'operator' });
      }
      expect(await expectNothingLeft(spawned)).toEqual(NOTHING_LEFT);
    });
  });

  describe('given RUN_TIMEOUT_S=2', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({
        INVENTORY: fleet.lab.inventoryPath,
        RUN_TIMEOUT_S: '2',
        ...OWN_MASTERS,
      });
    }, T);
    afterAll(async () => {
      await server?.close();
    }, T);

    it('when a run outlasts it, then it ends timed_out and leaves no process, no SSH master and no temp dir', async () => {
      const started = Date.now();
      const answer = server.request('POST', '/v1/runs?wait=30', {
        body: { playbook: 'pause', limit: ['h1'] },
      });
      const id = await eventually('the run row', async () => {
        const row = await server.database.db.knex('runs').first('id');
        return row?.id as string | undefined;
      });
      const spawned = await spawnedRun(server, id);
      const res = await answer;
      expect(res.status, res.text).toBe(201);
      expect(res.body).toMatchObject({ id, status: 'timed_out', error: 'run exceeded 2s' });
      // timeout (2 s) plus at most the cancel grace (2 s) and clean-up, never the pause
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(await expectNothingLeft(spawned)).toEqual(NOTHING_LEFT);
    });
  });

  describe('given MAX_CONCURRENT_RUNS=1 and a pause run holding the only slot', () => {
    let server: TestServer;
    let holder: Awaited<ReturnType<typeof startPause>>;
    let waiting: string;

    beforeAll(async () => {
      server = await startTestServer({
        INVENTORY: fleet.lab.inventoryPath,
        MAX_CONCURRENT_RUNS: '1',
        ...OWN_MASTERS,
      });
      holder = await startPause(server);
    }, T);
    afterAll(async () => {
      await server?.close();
    }, T);

    it('when a second run is asked for, then it is queued and starts no process', async () => {
      const res = await server.request('POST', '/v1/runs?wait=1', {
        body: { playbook: 'ping', limit: ['h1'] },
      });
      expect(res.status, res.text).toBe(202);
      waiting = res.body.id;
      expect(res.body).toMatchObject({ status: 'queued', started_at: null, rc: null });
      await sleep(500);
      const later = await server.request('GET', `/v1/runs/${waiting}`, { token: 'viewer' });
      expect(later.body.status).toBe('queued');
      expect(spawnedRunIds(server)).toEqual([holder.id]);
      const queued = await server.request('GET', '/v1/runs?status=queued', { token: 'viewer' });
      expect(queued.body.items.map((r: { id: string }) => r.id)).toEqual([waiting]);
    });

    it('when a queued run is canceled, then it ends canceled without ever starting', async () => {
      const res = await server.request('POST', '/v1/runs', {
        body: { playbook: 'ping', limit: ['h1'] },
      });
      expect(res.body.status).toBe('queued');
      const canceled = await server.request('POST', `/v1/runs/${res.body.id}/cancel`, {
        token: 'operator',
      });
      expect(canceled.status, canceled.text).toBe(200);
      expect(canceled.body).toMatchObject({
        status: 'canceled',
        error: 'canceled while queued',
        rc: null,
        started_at: null,
      });
      expect(spawnedRunIds(server)).not.toContain(res.body.id);
      const holding = await server.request('GET', `/v1/runs/${holder.id}`, { token: 'viewer' });
      expect(holding.body.status).toBe('running');
    });

    it('when the slot holder is canceled, then the queued run starts and succeeds', async () => {
      const res = await server.request('POST', `/v1/runs/${holder.id}/cancel`, {
        token: 'operator',
      });
      expect(res.body.status).toBe('canceled');
      const ran = await runWhen(
        server,
        waiting,
        (r) => r.status !== 'queued' && r.status !== 'running',
      );
      expect(ran).toMatchObject({ status: 'succeeded', rc: 0 });
      expect(await expectNothingLeft(holder.spawned)).toEqual(NOTHING_LEFT);
    });
  });
});
