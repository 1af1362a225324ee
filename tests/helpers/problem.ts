import { expect } from 'vitest';
import type { TestResponse } from './server.ts';

/** A JavaScript stack frame, a JS error name, or a path of the code: never in an error body. */
const STACK_LIKE =
  /\n\s+at\s|\bat\s+(?:\S+\s+\()?(?:\/|file:|node:)\S*:\d+:\d+|node_modules|\/src\/[\w/-]+\.ts|\b(?:Type|Reference|Syntax|Range)Error\b/;

export function expectNoStack(text: string): void {
  const hit = STACK_LIKE.exec(text);
  expect(hit, `stack-like text in: ${text.slice(0, 500)}`).toBeNull();
}

/**
 * The response is an RFC 9457 problem: problem+json, the given status and type, a title and a
 * detail, the request's id, and no stack. `field` names the offending field of a 400.
 */
export function expectProblem(
  res: TestResponse,
  status: number,
  slug: string,
  opts: { field?: string; detail?: RegExp } = {},
): void {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json\b/);
  expect(res.body).toMatchObject({
    type: `https://routeplane.dev/problems/${slug}`,
    title: expect.stringMatching(/\S/),
    status,
    detail: expect.stringMatching(/\S/),
    request_id: res.headers.get('x-request-id'),
  });
  if (opts.detail) expect(res.body.detail).toMatch(opts.detail);
  if (opts.field) {
    expect(res.body.errors).toEqual(
      expect.arrayContaining([
        { field: opts.field, message: expect.stringMatching(/\S/) as unknown as string },
      ]),
    );
    expect(res.body.detail).toContain(opts.field);
  }
  expectNoStack(res.text);
}
