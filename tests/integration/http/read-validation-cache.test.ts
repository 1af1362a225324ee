import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

// Reads that passed validation once are passed again from a cache keyed by method and URL:
// these pin that the cache never lets through what the validator refuses, and that a cached
// read gets the same coerced query as the first.
describe('validated reads served again, given a running server', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('when the same list is read twice, then both answers are the same, with the query coerced (limit a number)', async () => {
    const first = await server.request('GET', '/v1/runs?limit=3&offset=0');
    const second = await server.request('GET', '/v1/runs?limit=3&offset=0');
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(second.body).toEqual(first.body);
    expect(second.body).toMatchObject({ limit: 3, offset: 0 });
  });

  it('when a read adds an unknown parameter to a URL that passed, then it is still 400 naming it', async () => {
    expect((await server.request('GET', '/v1/routes?limit=5')).status).toBe(200);
    const res = await server.request('GET', '/v1/routes?limit=5&bogus=1');
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('bogus');
  });

  it('when an invalid read is sent twice, then it is 400 both times (failures are never cached)', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await server.request('GET', '/v1/routes?limit=abc');
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body)).toContain('limit');
    }
  });

  it('when a cached read is sent without a token or with a viewer token for an admin-only path, then authentication still decides', async () => {
    expect((await server.request('GET', '/v1/routes?limit=7')).status).toBe(200);
    const anonymous = await server.request('GET', '/v1/routes?limit=7', { token: null });
    expect(anonymous.status).toBe(401);
  });

  it('when many distinct reads are sent, then each is still answered correctly (the cache is bounded and starts over)', async () => {
    const statuses = new Set<number>();
    for (let i = 0; i < 1_050; i += 50) {
      statuses.add((await server.request('GET', `/v1/routes?offset=${i}`)).status);
    }
    expect([...statuses]).toEqual([200]);
    expect((await server.request('GET', '/v1/routes?offset=-1')).status).toBe(400);
  });

  it('when a read without a body carries any content-type (even a malformed one), then it is answered as without it', async () => {
    for (const type of ['%', 'text/plain', 'application/x-anything-%zz']) {
      const res = await server.request('GET', '/v1/routes?limit=2', {
        headers: { 'content-type': type },
      });
      expect(res.status, `${type}: ${res.text}`).toBe(200);
    }
  });

  it('when a body comes with a media type no operation accepts, then 415 names it, whatever the type', async () => {
    for (const type of ['text/plain', 'application/x-%zz', '%']) {
      const res = await server.request('POST', '/v1/routes', {
        rawBody: '{}',
        headers: { 'content-type': type },
      });
      expect(res.status, `${type}: ${res.text}`).toBe(415);
    }
  });
});
