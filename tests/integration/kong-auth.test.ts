import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLES, roleSatisfies } from '../../src/auth/roles.ts';
import { expectProblem } from '../helpers/problem.ts';
import { CountingRunner } from '../helpers/runs.ts';
import { startTestServer, type TestResponse, type TestServer } from '../helpers/server.ts';
import { sampleOperations } from '../static/contract.ts';
import { openSocket, refusal } from '../helpers/ws-client.ts';

const SECRET = randomBytes(32).toString('hex');
const UNKNOWN_RUN = '00000000-0000-4000-8000-000000000000';

interface AsKong {
  /** The gateway secret as Kong sends it; false: none, a string: that value. */
  secret?: boolean | string;
  consumer?: string | null;
  groups?: string;
  body?: unknown;
}

describe('AUTH_MODE=kong, given the API behind Kong with a gateway secret', () => {
  let server: TestServer;
  const runner = new CountingRunner();
  beforeAll(async () => {
    server = await startTestServer(
      { AUTH_MODE: 'kong', GATEWAY_SECRET: SECRET, ALLOW_LOCAL_WRITES: 'true' },
      { runner },
    );
  });
  afterAll(async () => {
    await server?.close();
  });

  /** A request as Kong forwards it: the secret as bearer token plus the consumer headers. */
  const viaKong = (method: string, url: string, o: AsKong = {}): Promise<TestResponse> => {
    const headers: Record<string, string> = {};
    const secret = o.secret ?? true;
    if (secret !== false) headers.authorization = `Bearer ${secret === true ? SECRET : secret}`;
    if (o.consumer !== null) {
      headers['x-consumer-username'] = o.consumer ?? 'alice-ci';
      headers['x-consumer-id'] = '7f7c3c2e-5a57-4d0e-9a43-6c1f3e1f0a11';
    }
    if (o.groups !== undefined) headers['x-consumer-groups'] = o.groups;
    return server.request(method, url, { token: null, headers, body: o.body });
  };

  const kongHeaders = (groups: string, secret = SECRET) => ({
    authorization: `Bearer ${secret}`,
    'x-consumer-username': 'dashboard',
    'x-consumer-id': '7f7c3c2e-5a57-4d0e-9a43-6c1f3e1f0a12',
    'x-consumer-groups': groups,
  });

  it('when a WebSocket upgrade comes through Kong, then the consumer’s role decides its topics', async () => {
    const s = await openSocket(server.url, { token: null, headers: kongHeaders('viewer') });
    s.send({ type: 'subscribe', topics: ['routes', 'clients'] });
    expect(await s.next((m) => m.type === 'full')).toMatchObject({ topic: 'routes' });
    expect(await s.next((m) => m.type === 'error')).toMatchObject({
      topic: 'clients',
      code: 'forbidden',
    });
    await s.close();
  });

  it('when a WebSocket upgrade lacks the gateway secret, then 401 whatever the consumer headers say', async () => {
    const forged = kongHeaders('admin', randomBytes(32).toString('hex'));
    expect(await refusal(server.url, { token: null, headers: forged })).toBe(401);
  });

  it('when the gateway secret is missing, then 401 problem, whatever consumer headers say', async () => {
    const res = await viaKong('GET', '/v1/runs', { secret: false, groups: 'admin' });
    expectProblem(res, 401, 'unauthorized');
  });

  it('when X-Consumer-Groups: admin is forged with a wrong secret, then 401 problem and no run', async () => {
    const res = await viaKong('POST', '/v1/runs', {
      secret: randomBytes(32).toString('hex'),
      groups: 'admin',
      body: { playbook: 'ping' },
    });
    expectProblem(res, 401, 'unauthorized', { detail: /through the gateway/ });
    expect(runner.specs).toHaveLength(0);
  });

  it('when a standalone bearer token is sent instead, then 401 problem', async () => {
    const res = await server.request('GET', '/v1/runs', { token: 'admin' });
    expectProblem(res, 401, 'unauthorized');
  });

  it('when the secret comes without a consumer, then 401 problem', async () => {
    const res = await viaKong('GET', '/v1/runs', { consumer: null, groups: 'admin' });
    expectProblem(res, 401, 'unauthorized', { detail: /did not identify a consumer/ });
  });

  it('when Kong marks the consumer anonymous, then 401 problem', async () => {
    const res = await server.request('GET', '/v1/runs', {
      token: null,
      headers: {
        authorization: `Bearer ${SECRET}`,
        'x-consumer-username': 'anonymous',
        'x-consumer-id': 'a',
        'x-consumer-groups': 'admin',
        'x-anonymous-consumer': 'true',
      },
    });
    expectProblem(res, 401, 'unauthorized');
  });

  it('when the consumer is in no role group, then 403 problem', async () => {
    const res = await viaKong('GET', '/v1/runs', { groups: 'billing, staff' });
    expectProblem(res, 403, 'forbidden', { detail: /alice-ci/ });
  });

  it('when a viewer consumer asks for a write, then 403 problem naming the role', async () => {
    const res = await viaKong('POST', `/v1/runs/${UNKNOWN_RUN}/cancel`, { groups: 'viewer' });
    expectProblem(res, 403, 'forbidden', {
      detail: /needs the operator role; consumer 'alice-ci' has viewer/,
    });
  });

  it('when an operator consumer cancels an unknown run, then authorization passes (404)', async () => {
    const res = await viaKong('POST', `/v1/runs/${UNKNOWN_RUN}/cancel`, { groups: 'operator' });
    expectProblem(res, 404, 'not-found');
  });

  it('when a consumer has several groups, then the highest role counts', async () => {
    const res = await viaKong('POST', `/v1/runs/${UNKNOWN_RUN}/cancel`, {
      groups: 'staff, viewer, operator',
    });
    expectProblem(res, 404, 'not-found');
  });

  it('when an admin consumer starts a run, then the run records the consumer as its actor', async () => {
    const res = await viaKong('POST', '/v1/runs?wait=10', {
      consumer: 'ops-admin',
      groups: 'admin',
      body: { playbook: 'ping' },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.requested_by).toBe('ops-admin');
    const row = (await server.database.db
      .knex('runs')
      .where({ id: res.body.id })
      .first('requested_by')) as { requested_by: string };
    expect(row.requested_by).toBe('ops-admin');
    const log = server.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.event === 'http.request' && l.path === '/v1/runs' && l.status === 201);
    expect(log?.actor).toBe('ops-admin');
  });

  it('when an operator consumer creates a route, then 201 and the consumer is its creator', async () => {
    // Scheduled for later: recorded at once, with no apply run to wait for.
    const res = await viaKong('POST', '/v1/routes', {
      consumer: 'deployer-ui',
      groups: 'operator',
      body: {
        host: 'localhost',
        to: '203.0.113.64/28',
        dev: 'lo',
        create_at: new Date(Date.now() + 3_600_000).toISOString(),
      },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ status: 'pending', created_by: 'deployer-ui' });
    const events = (await server.database.db
      .knex('route_events')
      .where({ route_id: res.body.id })
      .select('actor', 'action')) as { actor: string; action: string }[];
    expect(events).toEqual([{ actor: 'deployer-ui', action: 'create' }]);
  });

  it('when a public operation is called, then no secret is needed', async () => {
    const res = await server.request('GET', '/healthz', { token: null });
    expect(res.status).toBe(200);
  });

  const protectedOps = sampleOperations().filter((op) => op.role !== null);

  it.each(protectedOps.map((op) => [`${op.method} ${op.template}`, op] as const))(
    'when each role calls %s, then only roles at or above its x-required-role pass',
    async (_, op) => {
      // Most operations answer problem+json; compatibility ones keep the format they declare.
      const expectDenied = (res: TestResponse, status: number, slug: string) => {
        if (op.authErrorType === 'application/problem+json') expectProblem(res, status, slug);
        else {
          expect(res.status, res.text).toBe(status);
          expect(res.headers.get('content-type')).toContain(op.authErrorType);
        }
      };
      for (const role of ROLES) {
        const res = await viaKong(op.method, op.path, {
          groups: role,
          body: op.hasBody ? {} : undefined,
        });
        if (roleSatisfies(role, op.role!)) {
          expect([401, 403], `${role} on ${op.operationId}: ${res.text}`).not.toContain(res.status);
        } else {
          expectDenied(res, 403, 'forbidden');
        }
      }
      const noSecret = await viaKong(op.method, op.path, { secret: false, groups: 'admin' });
      expectDenied(noSecret, 401, 'unauthorized');
    },
  );
});
