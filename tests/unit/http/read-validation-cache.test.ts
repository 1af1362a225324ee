import type { NextFunction, Request, Response } from 'express';
import { describe, expect, it } from 'vitest';
import { readValidationCache } from '../../../src/http/openapi-validation.ts';

const doc = {
  openapi: '3.0.3',
  info: { title: 't', version: '1' },
  paths: {},
  components: { parameters: { Trace: { name: 'x-trace', in: 'header', schema: {} } } },
} as never;
const queryOp = { operationId: 'list', parameters: [{ name: 'limit', in: 'query' }] };
const headerOp = { operationId: 'traced', parameters: [{ $ref: '#/components/parameters/Trace' }] };

/** The library's stage as the cache sees it: it coerces the query, or refuses `bad`. */
function library() {
  const calls: string[] = [];
  const stage = (req: Request, _res: Response, next: NextFunction) => {
    calls.push(req.originalUrl);
    if (req.originalUrl.includes('bad')) return next(new Error('refused'));
    Object.defineProperty(req, 'query', {
      value: { limit: 3 },
      writable: true,
      configurable: true,
    });
    next();
  };
  return { calls, stage };
}

function request(url: string, schema: object = queryOp, method = 'GET') {
  return { method, originalUrl: url, body: undefined, openapi: { schema } } as unknown as Request;
}

function run(stage: ReturnType<typeof readValidationCache>, req: Request): unknown {
  let outcome: unknown = 'not called';
  stage(req, {} as Response, (err?: unknown) => void (outcome = err ?? 'next'));
  return outcome;
}

describe('readValidationCache', () => {
  it('when the same read comes twice, then the library validates it once and the second gets the coerced query, a copy of its own', () => {
    const lib = library();
    const cached = readValidationCache(doc, lib.stage);
    const first = request('/v1/routes?limit=3');
    const second = request('/v1/routes?limit=3');
    expect(run(cached, first)).toBe('next');
    (first.query as Record<string, unknown>).limit = 99;
    expect(run(cached, second)).toBe('next');
    expect(lib.calls).toEqual(['/v1/routes?limit=3']);
    expect(second.query).toEqual({ limit: 3 });
  });

  it('when the URL differs, the library refused it, it is a write, or the operation reads headers, then the library validates every time', () => {
    const lib = library();
    const cached = readValidationCache(doc, lib.stage);
    for (const req of [
      request('/v1/routes?limit=3'),
      request('/v1/routes?limit=4'),
      request('/v1/routes?bad=1'),
      request('/v1/routes?bad=1'),
      request('/v1/routes?limit=3', queryOp, 'POST'),
      request('/v1/traced', headerOp),
      request('/v1/traced', headerOp),
    ]) {
      run(cached, req);
    }
    expect(lib.calls).toEqual([
      '/v1/routes?limit=3',
      '/v1/routes?limit=4',
      '/v1/routes?bad=1',
      '/v1/routes?bad=1',
      '/v1/routes?limit=3',
      '/v1/traced',
      '/v1/traced',
    ]);
    expect(run(cached, request('/v1/routes?bad=1'))).toBeInstanceOf(Error);
  });
});
