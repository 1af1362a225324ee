import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem } from '../../helpers/problem.ts';
import { startTestServer, TOKENS, type TestServer } from '../../helpers/server.ts';

const WRONG_TOKEN = 'wrong-token-9876543210';

describe('bearer-token auth, given a server with a viewer, an operator and an admin token', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });
  const runCount = async () =>
    Number((await server.database.db.knex('runs').count({ n: '*' }))[0]!.n);
  const requestLog = (requestId: string | null) =>
    server.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.event === 'http.request' && l.request_id === requestId);

  it('when no Authorization header is sent, then 401 problem with a Bearer challenge', async () => {
    const res = await server.request('GET', '/v1/hosts', { token: null });
    expectProblem(res, 401, 'unauthorized');
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
  });

  it('when the bearer token is unknown, then 401 problem saying the token is not valid', async () => {
    const res = await server.request('GET', '/v1/hosts', {
      token: null,
      headers: { authorization: `Bearer ${WRONG_TOKEN}` },
    });
    expectProblem(res, 401, 'unauthorized', { detail: /not valid/ });
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
  });

  it('when another scheme carries a valid token, then 401 problem', async () => {
    const res = await server.request('GET', '/v1/hosts', {
      token: null,
      headers: { authorization: `Basic ${TOKENS.admin}` },
    });
    expectProblem(res, 401, 'unauthorized');
  });

  it('when the header holds a valid token followed by another word, then 401 problem', async () => {
    const res = await server.request('GET', '/v1/hosts', {
      token: null,
      headers: { authorization: `Bearer ${TOKENS.admin} extra` },
    });
    expectProblem(res, 401, 'unauthorized');
  });

  it('when the scheme is written in lower case, then the token is accepted', async () => {
    const res = await server.request('GET', '/v1/runs', {
      token: null,
      headers: { authorization: `bearer ${TOKENS.viewer}` },
    });
    expect(res.status).toBe(200);
  });

  it('when a viewer starts a run (an admin operation), then 403 naming the role needed and no run is recorded', async () => {
    const res = await server.request('POST', '/v1/runs', {
      token: 'viewer',
      body: { playbook: 'ping' },
    });
    expectProblem(res, 403, 'forbidden', { detail: /needs the admin role.*'viewer' has viewer/ });
    expect(await runCount()).toBe(0);
  });

  it('when an operator starts a run, then 403 too: operator is below admin', async () => {
    const res = await server.request('POST', '/v1/runs', {
      token: 'operator',
      body: { playbook: 'ping' },
    });
    expectProblem(res, 403, 'forbidden', { detail: /needs the admin role/ });
    expect(await runCount()).toBe(0);
  });

  it('when a viewer lists runs (a viewer operation), then 200 and the request log names the viewer as actor', async () => {
    const res = await server.request('GET', '/v1/runs', { token: 'viewer' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ items: [], total: 0 });
    expect(requestLog(res.headers.get('x-request-id'))).toMatchObject({
      status: 200,
      actor: 'viewer',
    });
  });

  it('when an admin calls a viewer operation, then the higher role satisfies it', async () => {
    expect((await server.request('GET', '/v1/hosts', { token: 'admin' })).status).toBe(200);
  });

  it.each([
    ['/healthz', /^application\/json/],
    ['/readyz', /^application\/json/],
    ['/docs', /^text\/html/],
    ['/openapi.yaml', /^application\/yaml/],
    ['/openapi.json', /^application\/json/],
  ])('when %s is fetched without a token, then 200', async (url, type) => {
    const res = await server.request('GET', url, { token: null });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(type);
  });

  it('when tokens valid and invalid were used, in headers and in a query string, then none appears in the server logs', async () => {
    await server.request('GET', `/v1/hosts?access_token=${TOKENS.operator}`);
    await server.request('GET', '/v1/nope', { token: 'operator' });
    await server.request('GET', '/v1/runs', {
      token: null,
      headers: { authorization: `Bearer ${WRONG_TOKEN}` },
    });
    const text = server.logs.join('\n');
    expect(text).toContain('"event":"http.request"');
    for (const token of [...Object.values(TOKENS), WRONG_TOKEN]) {
      expect(text).not.toContain(token);
    }
  });
});
