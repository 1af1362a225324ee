import { OpenApiContext } from 'express-openapi-validator/dist/framework/openapi.context.js';
import { OpenApiSpecLoader } from 'express-openapi-validator/dist/framework/openapi.spec.loader.js';
import { applyOpenApiMetadata } from 'express-openapi-validator/dist/middlewares/openapi.metadata.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadContract, withoutExamples } from '../../../src/http/contract.ts';
import { OperationMatcher } from '../../../src/http/openapi-validation.ts';

type Outcome =
  | { kind: 'matched'; openapi: Record<string, unknown>; params: unknown }
  | { kind: 'passed' }
  | { kind: 'error'; status: number; message: string };

let context: OpenApiContext;
let matcher: OperationMatcher;

beforeAll(async () => {
  const spec = await new OpenApiSpecLoader({
    apiDoc: withoutExamples(loadContract().document),
    validateApiSpec: true,
    $refParser: { mode: 'bundle' },
  } as never).load();
  context = new OpenApiContext(spec, undefined as never);
  matcher = new OperationMatcher(context, null);
});

function fakeRequest(method: string, url: string) {
  return {
    method,
    url,
    originalUrl: url,
    path: url.split('?')[0],
    baseUrl: '',
    params: {},
    app: { enabled: () => false },
  } as Record<string, unknown>;
}

/** What the library's own metadata middleware makes of a request. */
function library(method: string, url: string): Outcome {
  const req = fakeRequest(method, url);
  let out: Outcome = { kind: 'passed' };
  try {
    applyOpenApiMetadata(context, null as never)(req as never, {} as never, () => undefined);
    if (req.openapi) out = { kind: 'matched', openapi: req.openapi as never, params: req.params };
  } catch (e) {
    const err = e as { status: number; message: string };
    out = { kind: 'error', status: err.status, message: err.message };
  }
  return out;
}

/** The same request through the compiled matcher. */
function compiled(method: string, url: string): Outcome {
  try {
    const m = matcher.match(url.split('?')[0]!, method);
    if (!m) return { kind: 'passed' };
    if (!m.schema) return { kind: 'error', status: 405, message: `${method} method not allowed` };
    return {
      kind: 'matched',
      openapi: {
        expressRoute: m.expressRoute,
        openApiRoute: m.openApiRoute,
        pathParams: m.pathParams,
        schema: m.schema,
        serial: context.serial,
      },
      params: m.pathParams,
    };
  } catch (e) {
    const err = e as { status: number; message: string };
    return { kind: 'error', status: err.status, message: err.message };
  }
}

describe('the compiled operation lookup', () => {
  it('when any path of the contract, an unknown path, a wrong method or a malformed escape is looked up, then the result is the library’s', () => {
    const urls = [
      '/healthz',
      '/readyz/',
      '/v1/hosts',
      '/v1/hosts/h1',
      '/v1/hosts/h1?refresh=true',
      '/v1/hosts/h%201',
      '/v1/hosts/%E0%A4%A',
      '/v1/hosts/h1/interfaces',
      '/v1/hosts/h1/interfaces/eth0',
      '/v1/hosts/h1/interfaces/eth0/extra',
      '/V1/HOSTS/h1',
      '/v1/runs',
      '/v1/runs/00000000-0000-0000-0000-000000000000/cancel',
      '/v1/routes',
      '/v1/routes/history',
      '/v1/routes/abc',
      '/v1/routes/abc/pause',
      '/routes/',
      '/routes/pause',
      '/metrics',
      '/v1/nothing',
      '/',
    ];
    let matched = 0;
    for (const url of urls) {
      for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD']) {
        const mine = compiled(method, url);
        const theirs = library(method, url);
        // The library also refuses unknown paths under its base path with a 404; the lookup
        // itself only says "no operation".
        if (theirs.kind === 'error' && theirs.status === 404) {
          expect(mine, `${method} ${url}`).toEqual({ kind: 'passed' });
          continue;
        }
        expect(mine, `${method} ${url}`).toEqual(theirs);
        if (mine.kind === 'matched') matched++;
      }
    }
    expect(matched).toBeGreaterThan(20);
  });

  it('when a request names an operation, then its operationId is given, and null otherwise', () => {
    expect(matcher.operationId('/v1/hosts/h1', 'GET')).toBe('getHost');
    expect(matcher.operationId('/v1/routes', 'POST')).toBe('createRoutes');
    expect(matcher.operationId('/v1/hosts/h1', 'DELETE')).toBeNull();
    expect(matcher.operationId('/v1/hosts/%E0%A4%A', 'GET')).toBeNull();
    expect(matcher.operationId('/nowhere', 'GET')).toBeNull();
  });
});
