import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSshd, stopSshd } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import { runWhen } from '../../helpers/runs.ts';
import { useTestServer } from '../../helpers/server.ts';

// Real ansible-playbook against a lab of 3 network-namespace hosts.
const T = 60_000;

interface Outcome {
  status: string;
  ok: number;
  changed: number;
  failures: number;
  unreachable: number;
  skipped: number;
  msg: string | null;
}
interface Result {
  host: string;
  task: string;
  status: string;
  changed: boolean;
  msg: string | null;
  data: Record<string, unknown>;
}

const resultOf = (run: { results: Result[] }, host: string, task: string) =>
  run.results.find((r) => r.host === host && r.task === task);

describe('the runs API against a lab of 3 hosts', { timeout: T }, () => {
  const fleet = useLab(3);
  const server = useTestServer(() => ({ INVENTORY: fleet.lab.inventoryPath }), T);

  describe('given three finished runs: ping on all, mixed outcomes on all, ping on h1', () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    let ping: any, mixed: any, pingH1: any;
    let statuses: number[];

    beforeAll(async () => {
      const post = (body: unknown) => server.request('POST', '/v1/runs?wait=50', { body });
      // one after the other, so created_at orders them
      const a = await post({ playbook: 'ping' });
      const b = await post({
        playbook: 'mixed',
        extravars: { change_on: ['h2'], fail_on: ['h3'] },
      });
      const c = await post({ playbook: 'ping', limit: ['h1'] });
      statuses = [a.status, b.status, c.status];
      [ping, mixed, pingH1] = [a.body, b.body, c.body];
    }, T);

    it('when each run ended within wait, then the answer is 201 with the run', () => {
      expect(statuses).toEqual([201, 201, 201]);
      expect(ping.finished_at).not.toBeNull();
    });

    it('when ping runs on every host, then the run succeeded with rc 0 and each host ok', () => {
      expect(ping).toMatchObject({
        kind: 'playbook',
        playbook: 'ping',
        hosts: ['h1', 'h2', 'h3'],
        limit: ['all'],
        status: 'succeeded',
        rc: 0,
        requested_by: 'admin',
        error: null,
      });
      for (const host of ['h1', 'h2', 'h3']) {
        expect(ping.summary[host]).toEqual({
          status: 'ok',
          ok: 1,
          changed: 0,
          failures: 0,
          unreachable: 0,
          skipped: 0,
          msg: null,
        } satisfies Outcome);
      }
    });

    it('when ping runs, then each host has a result carrying the module data (ping: pong)', () => {
      expect(ping.results).toHaveLength(3);
      for (const host of ['h1', 'h2', 'h3']) {
        const r = resultOf(ping, host, 'ping');
        expect(r).toMatchObject({ status: 'ok', changed: false, msg: null });
        expect(r!.data).toMatchObject({ ping: 'pong', changed: false });
        // ansible's bookkeeping and the module's arguments are not module data
        expect(Object.keys(r!.data).filter((k) => k.startsWith('_ansible'))).toEqual([]);
        expect(r!.data).not.toHaveProperty('invocation');
      }
    });

    it('when hosts end differently, then each host is ok, changed or failed, and the run failed with rc 2', () => {
      expect(mixed).toMatchObject({ status: 'failed', rc: 2, error: null });
      expect(mixed.summary.h1).toMatchObject({ status: 'ok', ok: 2, changed: 0, skipped: 1 });
      expect(mixed.summary.h2).toMatchObject({ status: 'changed', ok: 2, changed: 1 });
      expect(mixed.summary.h3).toEqual({
        status: 'failed',
        ok: 2,
        changed: 0,
        failures: 1,
        unreachable: 0,
        skipped: 0,
        msg: 'failing h3 as asked',
      } satisfies Outcome);
    });

    it('when a task fails on one host, then its result says failed with the message, and the others skipped it', () => {
      expect(resultOf(mixed, 'h3', 'fail where asked')).toMatchObject({
        status: 'failed',
        msg: 'failing h3 as asked',
      });
      expect(resultOf(mixed, 'h1', 'fail where asked')).toMatchObject({ status: 'skipped' });
      expect(resultOf(mixed, 'h2', 'change where asked')).toMatchObject({
        status: 'changed',
        changed: true,
      });
      expect(resultOf(mixed, 'h2', 'change where asked')!.data).toMatchObject({
        stdout: 'changed',
        rc: 0,
      });
    });

    it('when a run is limited to h1, then it targets h1 only', () => {
      expect(pingH1).toMatchObject({ hosts: ['h1'], limit: ['h1'], status: 'succeeded' });
      expect(Object.keys(pingH1.summary)).toEqual(['h1']);
    });

    it('when GET /v1/runs/{id}, then it answers the stored run with its results and log', async () => {
      const res = await server.request('GET', `/v1/runs/${mixed.id}`, { token: 'viewer' });
      expect(res.status).toBe(200);
      expect(res.body).toEqual(mixed);
      expect(typeof res.body.log).toBe('string');
    });

    it('when the run row is read from the database, then it holds what the API answered', async () => {
      const row = await server.database.db.knex('runs').where({ id: mixed.id }).first();
      expect(row).toMatchObject({
        status: 'failed',
        rc: 2,
        playbook: 'mixed',
        requested_by: 'admin',
        hosts: ['h1', 'h2', 'h3'],
        summary: mixed.summary,
      });
      expect(row.results).toEqual(mixed.results);
      expect(row.owner).toBe(server.services.presence.id);
    });

    it('when listing runs, then newest come first, without results or log', async () => {
      const res = await server.request('GET', '/v1/runs', { token: 'viewer' });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ total: 3, limit: 50, offset: 0 });
      expect(res.body.items.map((r: { id: string }) => r.id)).toEqual([
        pingH1.id,
        mixed.id,
        ping.id,
      ]);
      for (const item of res.body.items) {
        expect(item).not.toHaveProperty('results');
        expect(item).not.toHaveProperty('log');
      }
      expect(res.body.items[1].summary).toEqual(mixed.summary);
    });

    it('when listing by status, then only runs in that status come back', async () => {
      const failed = await server.request('GET', '/v1/runs?status=failed', { token: 'viewer' });
      expect(failed.body.items.map((r: { id: string }) => r.id)).toEqual([mixed.id]);
      expect(failed.body.total).toBe(1);
      const running = await server.request('GET', '/v1/runs?status=running', { token: 'viewer' });
      expect(running.body).toMatchObject({ items: [], total: 0 });
    });

    it('when listing by host, then only runs that targeted that host come back', async () => {
      const h2 = await server.request('GET', '/v1/runs?host=h2', { token: 'viewer' });
      expect(h2.body.items.map((r: { id: string }) => r.id)).toEqual([mixed.id, ping.id]);
      const h1 = await server.request('GET', '/v1/runs?host=h1', { token: 'viewer' });
      expect(h1.body.total).toBe(3);
      const none = await server.request('GET', '/v1/runs?host=h9', { token: 'viewer' });
      expect(none.body).toMatchObject({ items: [], total: 0 });
    });

    it('when listing by playbook, then only runs of that playbook come back', async () => {
      const res = await server.request('GET', '/v1/runs?playbook=ping', { token: 'viewer' });
      expect(res.body.items.map((r: { id: string }) => r.id)).toEqual([pingH1.id, ping.id]);
      expect(res.body.total).toBe(2);
    });

    it('when paging with limit and offset, then the page is sliced and total counts all matches', async () => {
      const page = await server.request('GET', '/v1/runs?limit=1&offset=1', { token: 'viewer' });
      expect(page.body).toMatchObject({ total: 3, limit: 1, offset: 1 });
      expect(page.body.items.map((r: { id: string }) => r.id)).toEqual([mixed.id]);
      const combined = await server.request('GET', '/v1/runs?playbook=ping&limit=1&offset=1', {
        token: 'viewer',
      });
      expect(combined.body.items.map((r: { id: string }) => r.id)).toEqual([ping.id]);
      const past = await server.request('GET', '/v1/runs?offset=10', { token: 'viewer' });
      expect(past.body).toMatchObject({ items: [], total: 3 });
    });

    it.each([
      ['status=nonsense', '/query/status'],
      ['limit=0', '/query/limit'],
      ['limit=201', '/query/limit'],
      ['offset=-1', '/query/offset'],
      ['host=a%20b', '/query/host'],
      ['sort=id', '/query/sort'],
    ])('when listing with %s, then 400 names %s', async (query, field) => {
      const res = await server.request('GET', `/v1/runs?${query}`, { token: 'viewer' });
      expect(res.status).toBe(400);
      expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    });

    it('when an ended run is canceled, then 409 and the run is unchanged', async () => {
      const res = await server.request('POST', `/v1/runs/${ping.id}/cancel`, {
        token: 'operator',
      });
      expect(res.status).toBe(409);
      expect(res.body.detail).toMatch(/already ended \(succeeded\)/);
      const again = await server.request('GET', `/v1/runs/${ping.id}`, { token: 'viewer' });
      expect(again.body.status).toBe('succeeded');
    });
  });

  it('when a run has no such id, then GET answers 404, and a malformed id 400', async () => {
    const missing = await server.request('GET', '/v1/runs/3f1e8d52-8f3c-4e55-9d0e-2f4b8d1c9a10', {
      token: 'viewer',
    });
    expect(missing.status).toBe(404);
    const malformed = await server.request('GET', '/v1/runs/not-a-uuid', { token: 'viewer' });
    expect(malformed.status).toBe(400);
    expect(malformed.body.errors[0].field).toMatch(/\/id$/);
  });

  it('when a run is started without wait, then 202 with its Location, and it ends on its own', async () => {
    const res = await server.request('POST', '/v1/runs', {
      body: { playbook: 'net/addresses', limit: ['h2'], extravars: { marker: 'no-wait' } },
    });
    expect(res.status, res.text).toBe(202);
    expect(res.headers.get('location')).toBe(`/v1/runs/${res.body.id}`);
    expect(['queued', 'running']).toContain(res.body.status);
    expect(res.body.finished_at).toBeNull();
    const ended = await runWhen(
      server,
      res.body.id,
      (r) => r.status !== 'queued' && r.status !== 'running',
    );
    expect(ended).toMatchObject({ status: 'succeeded', rc: 0 });
  });

  it('when a playbook echoes an extravar and reads addresses, then each result carries its own host data', async () => {
    const res = await server.request('POST', '/v1/runs?wait=50', {
      body: { playbook: 'net/addresses', extravars: { marker: 'it is "me"' } },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.status).toBe('succeeded');
    for (const host of fleet.lab.hosts) {
      const addr = resultOf(res.body, host.name, 'addresses')!;
      const [eth0] = JSON.parse(addr.data.stdout as string) as {
        addr_info: { local: string }[];
      }[];
      expect(eth0!.addr_info.map((a) => a.local)).toContain(host.ipv4);
      expect(resultOf(res.body, host.name, 'echo')!.data.msg).toBe(
        `marker=it is "me" host=${host.name}`,
      );
    }
  });

  describe('given the sshd of h2 is stopped', () => {
    beforeAll(async () => {
      await stopSshd(fleet.lab, 'h2');
    }, T);
    afterAll(async () => {
      await startSshd(fleet.lab, 'h2');
    }, T);

    it('when ping runs on every host, then h2 is unreachable with a message, the others ok, and the run failed with rc 4', async () => {
      const res = await server.request('POST', '/v1/runs?wait=50', { body: { playbook: 'ping' } });
      expect(res.status, res.text).toBe(201);
      expect(res.body).toMatchObject({ status: 'failed', rc: 4, error: null });
      expect(res.body.summary.h2).toMatchObject({ status: 'unreachable', unreachable: 1, ok: 0 });
      expect(res.body.summary.h2.msg).toMatch(/ssh/i);
      expect(res.body.summary.h2.msg).toContain(fleet.lab.hosts[1]!.ipv4);
      expect(res.body.summary.h1).toMatchObject({ status: 'ok', ok: 1 });
      expect(res.body.summary.h3).toMatchObject({ status: 'ok', ok: 1 });
      expect(resultOf(res.body, 'h2', 'ping')).toMatchObject({
        status: 'unreachable',
        msg: res.body.summary.h2.msg,
      });
    });
  });
});
