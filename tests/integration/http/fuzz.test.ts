import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { load } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PlaybookRunner, RunHandle, RunSpec } from '../../../src/runs/types.ts';
import { expectNoStack } from '../../helpers/problem.ts';
import { REPO, startTestServer, TOKENS, type TestServer } from '../../helpers/server.ts';

/** A runner that refuses every run: half by throwing, half by ending each run in `error`. */
function refusingRunner(): PlaybookRunner {
  let calls = 0;
  return {
    start(spec: RunSpec): RunHandle {
      if (calls++ % 2 === 0) throw new Error(`refused run ${spec.runId}`);
      return {
        done: Promise.resolve({
          status: 'error',
          rc: null,
          summary: {},
          results: [],
          error: `refused run ${spec.runId}`,
          log: '',
        }),
        cancel: () => undefined,
      };
    },
    version: () => Promise.reject(new Error('no ansible-playbook in this test')),
  };
}

interface Operation {
  method: string;
  template: string;
  pattern: RegExp;
  statuses: Set<number>;
  query: string[];
}

type Parameter = { name?: string; in?: string; $ref?: string };
type Contract = {
  paths: Record<
    string,
    Record<string, { responses?: Record<string, unknown>; parameters?: Parameter[] }>
  >;
  components: { parameters: Record<string, Parameter> };
};
const contract = load(readFileSync(path.join(REPO, 'openapi.yaml'), 'utf8')) as Contract;
const TEMPLATES = Object.keys(contract.paths);
const OPERATIONS: Operation[] = Object.entries(contract.paths).flatMap(([template, item]) =>
  Object.entries(item)
    .filter(([method]) => ['get', 'post', 'put', 'patch', 'delete'].includes(method))
    .map(([method, op]) => ({
      method: method.toUpperCase(),
      template,
      pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`),
      statuses: new Set(Object.keys(op.responses ?? {}).map(Number)),
      query: (op.parameters ?? [])
        .map((p) => (p.$ref ? contract.components.parameters[p.$ref.split('/').pop()!]! : p))
        .filter((p) => p.in === 'query')
        .map((p) => p.name!),
    })),
);

// Express routes `/readyz/` as `/readyz` (non-strict routing), and so does the validator.
const routeOf = (pathname: string) => pathname.replace(/(.)\/$/, '$1');
const operationOf = (method: string, pathname: string) =>
  OPERATIONS.find((o) => o.method === method && o.pattern.test(routeOf(pathname)));

// --- generators ------------------------------------------------------------------------------

const text = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary-ascii', maxLength: 40 }),
);
const pathParam = fc.oneof(
  fc.constantFrom('localhost', 'h1', 'all', 'eth0', 'lo', '..', '.', '%00', 'a'.repeat(300)),
  fc.uuid().map((u) => u),
  text.filter((s) => s.length > 0).map(encodeURIComponent),
);
const contractPath = fc
  .tuple(fc.constantFrom(...TEMPLATES), fc.array(pathParam, { minLength: 4, maxLength: 4 }))
  .map(([template, params]) => {
    let i = 0;
    return template.replace(/\{[^}]+\}/g, () => params[i++]!);
  });
const fuzzPath = fc.oneof(
  { weight: 6, arbitrary: contractPath },
  { weight: 1, arbitrary: contractPath.map((p) => p + '/') },
  { weight: 1, arbitrary: fc.tuple(contractPath, pathParam).map(([p, s]) => `${p}/${s}`) },
  { weight: 1, arbitrary: fc.webPath().map((p) => p || '/') },
  { weight: 1, arbitrary: fc.constantFrom('/docs/', '/docs/x.js', '/v1', '/', '//v1/hosts') },
);
const queryKey = fc.oneof(
  fc.constantFrom('refresh', 'wait', 'status', 'kind', 'host', 'playbook', 'limit', 'offset'),
  fc.constantFrom('a[b]', 'token', '__proto__', 'constructor'),
  fc.string({ maxLength: 10 }),
);
const queryValue = fc.oneof(
  fc.constantFrom('true', 'false', '0', '1', '-1', '600', '601', '1e3', 'queued', 'gather', ''),
  fc.integer().map(String),
  text,
);
const query = fc
  .array(fc.tuple(queryKey, queryValue), { maxLength: 4 })
  .map((pairs) =>
    pairs.length === 0
      ? ''
      : '?' + pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&'),
  );
const method = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom('GET', 'POST') },
  { weight: 2, arbitrary: fc.constantFrom('PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS') },
);
const printable = fc.stringMatching(/^[\x20-\x7e]{0,60}$/);
const authorization = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...Object.values(TOKENS)).map((t) => `Bearer ${t}`) },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: printable },
  { weight: 1, arbitrary: printable.map((t) => `Bearer ${t}`) },
);
const contentType = fc.oneof(
  { weight: 4, arbitrary: fc.constant('application/json') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      undefined,
      'application/problem+json',
      'application/json; charset=utf-16',
      'application/json; charset=utf-8',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
    ),
  },
  { weight: 1, arbitrary: printable },
);
const FORBIDDEN = new Set([
  'connection',
  'content-length',
  'content-type',
  'authorization',
  'expect',
  'host',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
const extraHeaders = fc.dictionary(
  fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/).filter((h) => !FORBIDDEN.has(h)),
  printable.map((v) => v.trim()),
  { maxKeys: 3 },
);
const runRequest = fc.record(
  {
    playbook: fc.oneof(
      fc.constantFrom('ping', 'pause', 'vault', 'net/addresses', 'escape', 'missing', '../x'),
      text,
    ),
    limit: fc.oneof(
      fc.array(fc.constantFrom('localhost', 'all', 'ungrouped', 'nope'), { maxLength: 3 }),
      fc.array(text, { maxLength: 3 }),
    ),
    extravars: fc.dictionary(
      fc.oneof(fc.constantFrom('greeting', 'ansible_user', 'Bad-Key'), fc.string()),
      fc.jsonValue({ maxDepth: 2 }),
      { maxKeys: 3 },
    ),
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 4, arbitrary: runRequest.map((b) => JSON.stringify(b)) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  { weight: 1, arbitrary: fc.constant(JSON.stringify({ playbook: 'ping', pad: 'x'.repeat(150_000) })) },
);

const chaosRequest = fc.record({
  method,
  path: fuzzPath,
  query,
  authorization,
  contentType,
  headers: extraHeaders,
  body,
});

/** Marks a path parameter to fill, at request time, with the id of a run the fuzzing made. */
const KNOWN_RUN = 'KNOWN_RUN';
const PLAUSIBLE_PARAM: Record<string, fc.Arbitrary<string>> = {
  host: fc.constantFrom('localhost', 'localhost', 'h1'),
  ifname: fc.constantFrom('lo', 'eth0', 'x'),
  id: fc.oneof(fc.constant(KNOWN_RUN), fc.uuid()),
};
const PLAUSIBLE_QUERY: Record<string, fc.Arbitrary<string>> = {
  refresh: fc.constantFrom('true', 'false'),
  wait: fc.constantFrom('0', '1'),
  status: fc.constantFrom('queued', 'running', 'error', 'succeeded'),
  kind: fc.constantFrom('playbook', 'gather'),
  host: fc.constantFrom('localhost', 'h1'),
  playbook: fc.constantFrom('ping', 'gather_state'),
  limit: fc.constantFrom('1', '50', '200'),
  offset: fc.constantFrom('0', '3'),
};
const plausibleRun = fc.record(
  {
    playbook: fc.constantFrom('ping', 'pause', 'net/addresses', 'missing'),
    limit: fc.constantFrom(['localhost'], ['all'], ['ungrouped'], ['nope']),
    extravars: fc.dictionary(fc.constantFrom('greeting', 'count', 'greeting', 'count', 'ansible_user'), fc.jsonValue(), {
      maxKeys: 2,
    }),
  },
  { requiredKeys: ['playbook'] },
);
const contractRequest = fc.constantFrom(...OPERATIONS).chain((op) =>
  fc.record({
    method: fc.constant(op.method),
    path: fc
      .tuple(...[...op.template.matchAll(/\{([^}]+)\}/g)].map((m) => PLAUSIBLE_PARAM[m[1]!]!))
      .map((params) => {
        let i = 0;
        return op.template.replace(/\{[^}]+\}/g, () => params[i++]!);
      }),
    query: fc
      .subarray(op.query)
      .chain((names) => fc.tuple(...names.map((n) => PLAUSIBLE_QUERY[n]!.map((v) => `${n}=${v}`))))
      .map((pairs) => (pairs.length ? `?${pairs.join('&')}` : '')),
    authorization: fc
      .constantFrom(TOKENS.admin, TOKENS.admin, TOKENS.admin, TOKENS.operator, TOKENS.viewer)
      .map((t) => `Bearer ${t}`),
    contentType: fc.constant<string | undefined>('application/json'),
    headers: fc.constant({}),
    body: plausibleRun.map((b) => JSON.stringify(b)) as fc.Arbitrary<string | undefined>,
  }),
);
const fuzzRequest = fc.oneof(chaosRequest, contractRequest);

// --- the property ----------------------------------------------------------------------------

describe('fuzzing the HTTP surface, given a server whose runner refuses every run', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ALLOW_LOCAL_WRITES: 'true' }, { runner: refusingRunner() });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('when a few hundred generated requests are sent, then none is a 500, every 5xx is declared for its operation, and every error is a problem without a stack', async () => {
    const seen = new Map<number, number>();
    const runIds: string[] = [];
    await fc.assert(
      fc.asyncProperty(fuzzRequest, async (r) => {
        const known = runIds[runIds.length - 1] ?? '00000000-0000-4000-8000-000000000000';
        const url = new URL(server.url + r.path.replace(KNOWN_RUN, known) + r.query);
        const headers: Record<string, string> = { ...r.headers };
        if (r.authorization !== undefined) headers.authorization = r.authorization;
        if (r.contentType !== undefined) headers['content-type'] = r.contentType;
        const withBody = r.method !== 'GET' && r.method !== 'HEAD' && r.body !== undefined;
        const res = await fetch(url, {
          method: r.method,
          headers,
          body: withBody ? r.body : undefined,
        });
        const raw = await res.text();
        seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
        if ([201, 202].includes(res.status)) runIds.push((JSON.parse(raw) as { id: string }).id);
        const where = `${r.method} ${url.pathname}${url.search} -> ${res.status} ${raw.slice(0, 300)}`;

        expect(res.status, where).not.toBe(500);
        if (res.status >= 500) {
          const op = operationOf(r.method, url.pathname);
          expect(op, `undeclared operation answered 5xx: ${where}`).toBeDefined();
          expect([...op!.statuses], `${op!.method} ${op!.template}: ${where}`).toContain(
            res.status,
          );
        }
        if (res.status >= 400) expectNoStack(raw);
        const readiness = routeOf(url.pathname) === '/readyz' && res.status === 503;
        if (res.status >= 400 && !readiness) {
          expect(res.headers.get('content-type'), where).toMatch(/^application\/problem\+json/);
          if (r.method !== 'HEAD') {
            expect(JSON.parse(raw), where).toMatchObject({
              type: expect.stringMatching(/^https:\/\/routeplane\.dev\/problems\/[a-z-]+$/),
              title: expect.any(String),
              status: res.status,
              detail: expect.any(String),
            });
          }
        }
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 300), interruptAfterTimeLimit: 60_000 },
    );
    // The property must have reached past auth and validation, not only bounced off them.
    expect([...seen.keys()].filter((s) => s < 300).length, JSON.stringify([...seen])).toBeGreaterThan(0);
  });

  it('when the fuzzing is over, then every run it caused ended in error and none is left queued or running', async () => {
    const rows = await server.database.db
      .knex('runs')
      .select('status', 'error')
      .whereNotIn('status', ['error']);
    expect(rows).toEqual([]);
    const errors = await server.database.db.knex('runs').pluck('error');
    for (const e of errors) expect(e).toMatch(/^refused run /);
  });

  it('when the fuzzing is over, then the server still answers', async () => {
    expect((await server.request('GET', '/healthz', { token: null })).status).toBe(200);
    expect((await server.request('GET', '/v1/runs?limit=1')).status).toBe(200);
  });
});
