import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { describe, expect, it } from 'vitest';
import { operationDispatcher, type Operations } from '../../../src/http/operations.ts';
import { pipeline } from '../../../src/http/pipeline.ts';

const req = (extra: Record<string, unknown> = {}) =>
  ({ params: {}, ...extra }) as unknown as Request;
const res = {} as Response;

function collect(handler: RequestHandler, request = req()) {
  return new Promise<unknown>((resolve) => {
    handler(request, res, ((err?: unknown) => resolve(err ?? 'next')) as NextFunction);
  });
}

describe('pipeline', () => {
  it('when every stage calls next, then they run in order and the pipeline calls next once', async () => {
    const seen: number[] = [];
    const stage =
      (n: number): RequestHandler =>
      (_q, _s, next) => {
        seen.push(n);
        next();
      };
    expect(await collect(pipeline([stage(1), stage(2), stage(3)]))).toBe('next');
    expect(seen).toEqual([1, 2, 3]);
  });

  it('when a stage passes an error, throws or rejects, then later stages are skipped and the error goes on', async () => {
    const boom = new Error('boom');
    const later: RequestHandler = () => {
      throw new Error('must not run');
    };
    const passes: RequestHandler = (_q, _s, next) => next(boom);
    const throws: RequestHandler = () => {
      throw boom;
    };
    const rejects: RequestHandler = async () => {
      await Promise.resolve();
      throw boom;
    };
    for (const failing of [passes, throws, rejects]) {
      expect(await collect(pipeline([failing, later]))).toBe(boom);
    }
  });
});

describe('operationDispatcher', () => {
  const handlers = (getHost: Operations['getHost']) => ({ getHost }) as unknown as Operations;

  it('when the validator matched an operation, then its handler runs with the decoded path parameters', async () => {
    let got: unknown;
    const d = operationDispatcher(handlers((q) => void (got = q.params)));
    const request = req({
      openapi: { schema: { operationId: 'getHost' }, pathParams: { host: 'h 1' } },
    });
    d(request, res, () => undefined);
    expect(got).toEqual({ host: 'h 1' });
  });

  it('when no operation matched, then the request falls through to what follows', async () => {
    const d = operationDispatcher(handlers(() => undefined));
    expect(await collect(d, req())).toBe('next');
    expect(await collect(d, req({ openapi: { schema: { operationId: 'nope' } } }))).toBe('next');
  });

  it('when a handler rejects, then the error goes to the error handlers', async () => {
    const boom = new Error('boom');
    const d = operationDispatcher(handlers(async () => Promise.reject(boom)));
    const request = req({ openapi: { schema: { operationId: 'getHost' }, pathParams: {} } });
    expect(await collect(d, request)).toBe(boom);
  });
});
