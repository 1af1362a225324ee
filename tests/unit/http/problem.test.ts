import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AppError,
  ConflictError,
  HostUnreachableError,
  UnauthorizedError,
} from '../../../src/http/errors.ts';
import { problemHandler, toAppError } from '../../../src/http/problem.ts';
import { createLogger } from '../../../src/logger.ts';

describe('toAppError', () => {
  it.each([
    ['entity.parse.failed', 400, 'malformed-body'],
    ['entity.too.large', 413, 'payload-too-large'],
    ['charset.unsupported', 415, 'unsupported-media-type'],
    ['encoding.unsupported', 415, 'unsupported-media-type'],
    ['request.aborted', 400, 'malformed-body'],
  ])('when body-parser fails with %s, then it becomes a %i %s problem', (type, status, slug) => {
    const err = Object.assign(new Error('x'), { type, status: 400 });
    expect(toAppError(err)).toMatchObject({ status, slug });
  });

  it('when the validator reports field errors, then each field is named as /body/...', () => {
    const err = {
      status: 400,
      message: 'bad',
      errors: [{ path: '.body.limit.0', message: 'must be string' }, { path: '/query/x' }],
    };
    expect(toAppError(err)).toMatchObject({
      status: 400,
      slug: 'validation',
      extra: {
        errors: [
          { field: '/body/limit/0', message: 'must be string' },
          { field: '/query/x', message: 'invalid' },
        ],
      },
    });
  });

  it('when something unexpected is thrown, then it becomes a 500 whose detail says nothing of it', () => {
    const problem = toAppError(new TypeError("Cannot read properties of undefined (reading 'x')"));
    expect(problem).toMatchObject({ status: 500, slug: 'internal' });
    expect(problem.message).not.toMatch(/Cannot read/);
  });

  it('when a thrown value is not even an Error, then it is still a 500', () => {
    expect(toAppError(undefined)).toMatchObject({ status: 500 });
    expect(toAppError('boom')).toMatchObject({ status: 500 });
  });
});

describe('problemHandler, given an app whose handlers throw', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    const app = express();
    app.get('/conflict', () => {
      throw new ConflictError('Route r1 is pending', {
        status: 'pending',
        type: 'route',
        title: 'x',
      });
    });
    app.get('/unreachable', () => {
      throw new HostUnreachableError('h2', 'ssh: connection refused', null);
    });
    app.get('/unauthorized', () => {
      throw new UnauthorizedError();
    });
    app.get('/crash', () => {
      throw new Error('secret internals at /srv/app.js:1:1');
    });
    app.use(problemHandler(createLogger('silent')));
    server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });
  const get = async (path: string) => {
    const res = await fetch(base + path);
    return { res, body: (await res.json()) as Record<string, unknown> };
  };

  it('when an error carries extension members named like standard ones, then the standard members win', async () => {
    const { res, body } = await get('/conflict');
    expect(res.status).toBe(409);
    expect(body).toMatchObject({
      type: 'https://routeplane.dev/problems/conflict',
      title: 'Conflict',
      status: 409,
      detail: 'Route r1 is pending',
      instance: '/conflict',
    });
  });

  it('when an error carries extension members, then they are in the problem beside the standard ones', async () => {
    const { res, body } = await get('/unreachable');
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(body).toMatchObject({ status: 502, host: 'h2', run_id: null });
  });

  it('when the problem is a 401, then a Bearer challenge comes with it', async () => {
    const { res } = await get('/unauthorized');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="routeplane"');
  });

  it('when a handler crashes, then 500 problem without its message or stack', async () => {
    const { res, body } = await get('/crash');
    expect(res.status).toBe(500);
    expect(JSON.stringify(body)).not.toMatch(/secret internals|app\.js/);
    expect(body).toMatchObject({ type: 'https://routeplane.dev/problems/internal', status: 500 });
  });

  it('when an AppError subclass is built by hand, then its type is the problem base plus its slug', () => {
    expect(new AppError(418, 'teapot', 'Teapot', 'short and stout').type).toBe(
      'https://routeplane.dev/problems/teapot',
    );
  });
});
