import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ApiClient, ApiError, ApiUnreachableError } from '../../../src/cli/api-client.ts';
import { describeError, fieldLabel } from '../../../src/cli/api-command.ts';

interface Seen {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
}

/** A client whose fetch records the request and answers with a canned response. */
function clientAnswering(
  status: number,
  body: unknown,
  opts: { token?: string; baseUrl?: string; contentType?: string } = {},
) {
  const seen: Seen[] = [];
  const fakeFetch = async (url: string | URL | Request, init?: RequestInit) => {
    seen.push({
      url: String(url),
      method: init?.method ?? 'GET',
      headers: init?.headers as Record<string, string>,
      body: init?.body as string | undefined,
    });
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return new Response(text, {
      status,
      headers: { 'content-type': opts.contentType ?? 'application/json' },
    });
  };
  const client = new ApiClient({
    baseUrl: opts.baseUrl ?? 'http://api.test:8080',
    token: opts.token,
    fetch: fakeFetch as typeof fetch,
  });
  return { client, seen };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.fail('expected a rejection'),
    (err: unknown) => err,
  );
}

/** A port on loopback where nothing listens. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const problem404 = {
  type: 'https://routeplane.dev/problems/not-found',
  title: 'Not found',
  status: 404,
  detail: 'No route 9b2f3c1e-5d4a-4f6b-8c7d-0e1f2a3b4c5d',
};

describe('ApiClient requests', () => {
  it('when a token is given, then it is sent as a bearer token', async () => {
    const { client, seen } = clientAnswering(200, { items: [] }, { token: 'secret-token' });
    await client.listHosts();
    expect(seen[0]!.headers.authorization).toBe('Bearer secret-token');
  });

  it('when filters are left out, then the query string carries only the given ones', async () => {
    const { client, seen } = clientAnswering(200, { items: [], total: 0, limit: 5, offset: 0 });
    await client.listRoutes({ host: 'h1', status: undefined, limit: 5 });
    expect(seen[0]!.url).toBe('http://api.test:8080/v1/routes?host=h1&limit=5');
  });

  it('when the base URL has a path and a trailing slash, then the path is kept', async () => {
    const { client, seen } = clientAnswering(200, { items: [] }, { baseUrl: 'https://gw/rp/' });
    await client.listHosts();
    expect(seen[0]!.url).toBe('https://gw/rp/v1/hosts');
  });

  it('when a route is added, then it is POSTed as JSON with wait in the query', async () => {
    const { client, seen } = clientAnswering(201, { id: 'x', host: 'h1' });
    const res = await client.createRoute(
      { host: 'h1', to: '203.0.113.0/24', via: '198.51.100.1', onlink: false, force: false },
      { wait: 5 },
    );
    expect(res.status).toBe(201);
    expect(seen[0]).toMatchObject({ method: 'POST', url: 'http://api.test:8080/v1/routes?wait=5' });
    expect(seen[0]!.headers['content-type']).toBe('application/json');
    expect(JSON.parse(seen[0]!.body!)).toMatchObject({ host: 'h1', to: '203.0.113.0/24' });
  });

  it('when a route is added with replace, then it is PUT so an existing one moves', async () => {
    const { client, seen } = clientAnswering(200, { id: 'x', host: 'h1' });
    await client.createRoute(
      { host: 'h1', to: '203.0.113.0/24', via: '198.51.100.2', onlink: false, force: false },
      { replace: true },
    );
    expect(seen[0]).toMatchObject({ method: 'PUT', url: 'http://api.test:8080/v1/routes' });
  });

  it('when an id has URL syntax in it, then it stays inside its path segment', async () => {
    const { client, seen } = clientAnswering(200, {});
    await client.getRoute('../hosts?x=1');
    expect(seen[0]!.url).toBe('http://api.test:8080/v1/routes/..%2Fhosts%3Fx%3D1');
  });

  it('when the base URL is not http(s), then the client refuses it', () => {
    expect(() => new ApiClient({ baseUrl: 'file:///etc/passwd' })).toThrow(/http or https/);
    expect(() => new ApiClient({ baseUrl: 'nope' })).toThrow(/not a URL/);
  });
});

describe('ApiClient errors', () => {
  it('when the API answers a problem, then the error carries its status and detail', async () => {
    const { client } = clientAnswering(404, problem404, {
      contentType: 'application/problem+json',
    });
    const err = await rejection(client.getRoute('9b2f3c1e-5d4a-4f6b-8c7d-0e1f2a3b4c5d'));
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 404, detail: problem404.detail });
    expect(describeError(err)).toEqual([`routeplane: ${problem404.detail}`]);
  });

  it('when a 400 names fields, then each is reported with the option the person typed', async () => {
    const { client } = clientAnswering(400, {
      type: 'https://routeplane.dev/problems/validation',
      title: 'Request validation failed',
      status: 400,
      detail: '/body/to: host bits set; /body/create_at: must match format "date-time"',
      errors: [
        { field: '/body/to', message: 'host bits set' },
        { field: '/body/create_at', message: 'must match format "date-time"' },
      ],
    });
    const err = await rejection(
      client.createRoute({ host: 'h1', to: '203.0.113.1/24', onlink: false, force: false }),
    );
    expect(describeError(err, ['host', 'to'])).toEqual([
      'routeplane: the API rejected the request:',
      '  <to>: host bits set',
      '  --create-at: must match format "date-time"',
    ]);
  });

  it('when an apply failed, then the route, host and run are named', async () => {
    const { client } = clientAnswering(502, {
      type: 'https://routeplane.dev/problems/apply-failed',
      title: 'Apply failed',
      status: 502,
      detail: 'Failed to connect to the host via ssh: Connection refused',
      host: 'h2',
      route_id: 'r-1',
      run_id: 'run-1',
      request_id: 'req-1',
    });
    const err = await rejection(
      client.createRoute({ host: 'h2', to: '203.0.113.0/24', onlink: false, force: false }),
    );
    expect(describeError(err)).toEqual([
      'routeplane: Failed to connect to the host via ssh: Connection refused',
      'routeplane: route r-1 is recorded on h2 and its apply is retried (run run-1)',
      'routeplane: request id req-1',
    ]);
  });

  it('when a gateway answers with { message }, then that message is the detail', async () => {
    const { client } = clientAnswering(429, { message: 'API rate limit exceeded' });
    const err = await rejection(client.listHosts());
    expect(err).toMatchObject({ status: 429, detail: 'API rate limit exceeded' });
  });

  it('when the answer is not JSON, then the detail quotes its first line', async () => {
    const { client } = clientAnswering(502, '<html>Bad Gateway</html>\n<body/>', {
      contentType: 'text/html',
    });
    const err = await rejection(client.listHosts());
    expect(err).toMatchObject({ status: 502, detail: 'HTTP 502: <html>Bad Gateway</html>' });
  });

  it('when no token was given and the API says 401, then the error says how to give one', async () => {
    const { client } = clientAnswering(401, {
      type: 'https://routeplane.dev/problems/unauthorized',
      title: 'Unauthorized',
      status: 401,
      detail: 'A valid bearer token is required',
    });
    const err = await rejection(client.listHosts());
    expect((err as ApiError).detail).toBe(
      'A valid bearer token is required (set --token or ROUTEPLANE_TOKEN)',
    );
  });

  it('when nothing listens at the URL, then the error names the URL and the refusal', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const err = await rejection(new ApiClient({ baseUrl: url }).listHosts());
    expect(err).toBeInstanceOf(ApiUnreachableError);
    expect((err as Error).message).toBe(
      `cannot reach the routeplane API at ${url}: connection refused (is the server running? set --api or ROUTEPLANE_API)`,
    );
  });
});

describe('fieldLabel', () => {
  it('when a field is a body or query property, then it reads as the CLI option', () => {
    expect(fieldLabel('/body/delete_at', ['host', 'to'])).toBe('--delete-at');
    expect(fieldLabel('/query/wait', [])).toBe('--wait');
  });

  it('when a field is a positional argument, then it reads as <name>', () => {
    expect(fieldLabel('/body/host', ['host', 'to'])).toBe('<host>');
    expect(fieldLabel('/params/id', ['id'])).toBe('<id>');
  });

  it('when a field is nested, then it stays as the API wrote it', () => {
    expect(fieldLabel('/body/0/to', ['to'])).toBe('/body/0/to');
  });
});
