import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectNoStack, expectProblem } from '../../helpers/problem.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

const json = { 'content-type': 'application/json' };

describe('HTTP errors, given a running server with BODY_LIMIT=1kb', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ BODY_LIMIT: '1kb' });
  });
  afterAll(async () => {
    await server?.close();
  });
  const runCount = async () =>
    Number((await server.database.db.knex('runs').count({ n: '*' }))[0]!.n);

  it('when the path is unknown, then 404 problem', async () => {
    const res = await server.request('GET', '/v1/no-such-thing');
    expectProblem(res, 404, 'not-found');
    expect(res.body.instance).toBe('/v1/no-such-thing');
  });

  it('when the path is unknown and outside /v1, then 404 problem without asking for a token', async () => {
    expectProblem(await server.request('GET', '/wp-login.php', { token: null }), 404, 'not-found');
  });

  it('when the method is not one the path has, then 405 problem with an Allow header', async () => {
    const res = await server.request('DELETE', '/v1/runs');
    expectProblem(res, 405, 'method-not-allowed', { detail: /DELETE/ });
    expect(res.headers.get('allow')?.split(/,\s*/).sort()).toEqual(['GET', 'POST']);
  });

  it('when the JSON body is malformed, then 400 malformed-body problem and no run', async () => {
    const res = await server.request('POST', '/v1/runs', {
      rawBody: '{"playbook": ',
      headers: json,
    });
    expectProblem(res, 400, 'malformed-body', { detail: /not valid JSON/ });
    expect(await runCount()).toBe(0);
  });

  it('when the body is not JSON by content-type, then 415 problem', async () => {
    const res = await server.request('POST', '/v1/runs', {
      rawBody: 'playbook=ping',
      headers: { 'content-type': 'text/plain' },
    });
    expectProblem(res, 415, 'unsupported-media-type', { detail: /text\/plain/ });
  });

  it('when the JSON declares a charset other than UTF-8, then 415 problem', async () => {
    const res = await server.request('POST', '/v1/runs', {
      rawBody: '{"playbook":"ping"}',
      headers: { 'content-type': 'application/json; charset=latin1' },
    });
    expectProblem(res, 415, 'unsupported-media-type');
  });

  it('when the body is over BODY_LIMIT, then 413 problem and no run', async () => {
    const res = await server.request('POST', '/v1/runs', {
      body: { playbook: 'ping', extravars: { blob: 'x'.repeat(2048) } },
    });
    expectProblem(res, 413, 'payload-too-large');
    expect(await runCount()).toBe(0);
  });

  it('when the body has a field the contract does not declare, then 400 naming that field', async () => {
    const res = await server.request('POST', '/v1/runs', { body: { playbook: 'ping', bogus: 1 } });
    expectProblem(res, 400, 'validation', { field: '/body/bogus' });
    expect(await runCount()).toBe(0);
  });

  it('when a required field is missing, then 400 naming that field', async () => {
    const res = await server.request('POST', '/v1/runs', { body: { limit: ['localhost'] } });
    expectProblem(res, 400, 'validation', { field: '/body/playbook' });
  });

  it('when a field breaks its pattern, then 400 naming that field', async () => {
    const res = await server.request('POST', '/v1/runs', { body: { playbook: '../etc/passwd' } });
    expectProblem(res, 400, 'validation', { field: '/body/playbook' });
  });

  it('when several fields are wrong, then every one is named', async () => {
    const res = await server.request('POST', '/v1/runs', {
      body: { playbook: 7, limit: [], other: true },
    });
    expectProblem(res, 400, 'validation');
    const fields = (res.body.errors as { field: string }[]).map((e) => e.field);
    expect(fields).toEqual(
      expect.arrayContaining(['/body/playbook', '/body/limit', '/body/other']),
    );
  });

  it('when a query parameter is unknown, then 400 naming it', async () => {
    expectProblem(await server.request('GET', '/v1/runs?colour=red'), 400, 'validation', {
      field: '/query/colour',
    });
  });

  it('when a query parameter has the wrong type, then 400 naming it', async () => {
    expectProblem(await server.request('GET', '/v1/runs?limit=ten'), 400, 'validation', {
      field: '/query/limit',
    });
  });

  it('when a path parameter breaks its format, then 400 naming it', async () => {
    expectProblem(await server.request('GET', '/v1/runs/not-a-uuid'), 400, 'validation', {
      field: '/params/id',
    });
  });

  it('when a free-text query parameter carries a NUL character, then 400 naming it, not a 500', async () => {
    expectProblem(await server.request('GET', '/v1/runs?playbook=%00'), 400, 'validation', {
      field: '/query/playbook',
    });
  });

  it('when a body string carries a NUL character, then 400 naming the field and no run', async () => {
    const res = await server.request('POST', '/v1/runs', {
      body: { playbook: 'ping', extravars: { note: 'a\u0000b' } },
    });
    expectProblem(res, 400, 'validation', { field: '/body/extravars/note' });
    expect(await runCount()).toBe(0);
  });

  it('when a body key carries a NUL character, then 400 naming it', async () => {
    const res = await server.request('POST', '/v1/routes', {
      body: { host: 'h1', to: '203.0.113.0/24', dev: 'eth0', 'x\u0000': 1 },
    });
    expectProblem(res, 400, 'validation', { field: '/body/x\u0000' });
  });

  it('when an unexpected error is thrown below a handler, then 500 problem with a generic detail and the cause only in the log', async () => {
    // An inventory file removed while the server runs is such an error: InventoryError is no
    // AppError (a missing one at start-up stops the process instead).
    const dir = await mkdtemp(path.join(os.tmpdir(), 'routeplane-vanishing-'));
    const inventory = path.join(dir, 'hosts.yml');
    await writeFile(inventory, 'all:\n  hosts:\n    h1: {}\n');
    const broken = await startTestServer({ INVENTORY: inventory });
    try {
      await rm(dir, { recursive: true });
      await new Promise((r) => setTimeout(r, 300)); // past the inventory's re-check interval
      const res = await broken.request('GET', '/v1/hosts');
      expectProblem(res, 500, 'internal');
      expect(res.text).not.toContain(dir);
      const logged = broken.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
      const error = logged.find((l) => l.event === 'http.error');
      expect(error).toMatchObject({ level: 50, request_id: res.headers.get('x-request-id') });
      expect(JSON.stringify(error)).toContain(dir);
    } finally {
      await broken.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('when a request carries a sane X-Request-Id, then the problem and the log line carry it', async () => {
    const res = await server.request('GET', '/v1/nope', {
      headers: { 'x-request-id': 'req-abc.1' },
    });
    expect(res.body.request_id).toBe('req-abc.1');
    expect(server.logs.some((l) => l.includes('"request_id":"req-abc.1"'))).toBe(true);
  });

  it('when X-Request-Id is not sane, then a fresh id replaces it', async () => {
    const res = await server.request('GET', '/v1/nope', {
      headers: { 'x-request-id': 'bad id; <script>' },
    });
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expectNoStack(res.text);
  });
});
