import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { load } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PlaybookRunner, RunHandle, RunSpec } from '../../../src/runs/types.ts';
import { expectNoStack } from '../../helpers/problem.ts';
import { eventually } from '../../helpers/runs.ts';
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

// --- the contract ----------------------------------------------------------------------------

type Schema = {
  $ref?: string;
  type?: string;
  enum?: unknown[];
  format?: string;
  minimum?: number;
  maximum?: number;
  example?: unknown;
};
type Parameter = { $ref?: string; name: string; in: string; schema?: Schema; example?: unknown };
type Media = { example?: unknown; examples?: Record<string, { value?: unknown }> };
type OperationObject = {
  responses?: Record<string, unknown>;
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, Media> };
};
type Contract = {
  paths: Record<string, Record<string, OperationObject> & { parameters?: Parameter[] }>;
};

const contract = load(readFileSync(path.join(REPO, 'openapi.yaml'), 'utf8')) as Contract;

function deref<T extends { $ref?: string }>(node: T): T {
  if (!node.$ref) return node;
  const target = node.$ref
    .replace(/^#\//, '')
    .split('/')
    .reduce<unknown>((at, key) => (at as Record<string, unknown>)[key], contract);
  return deref(target as T);
}

interface Operation {
  method: string;
  template: string;
  pattern: RegExp;
  statuses: Set<number>;
  /** Media types of the client-error (4xx) responses the operation declares. */
  errorMedia: string[];
  params: Parameter[];
  bodyExamples: unknown[];
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const OPERATIONS: Operation[] = Object.entries(contract.paths).flatMap(([template, item]) =>
  Object.entries(item)
    .filter(([method]) => METHODS.includes(method))
    .map(([method, raw]) => {
      const op = raw as OperationObject;
      const media = op.requestBody?.content?.['application/json'];
      return {
        method: method.toUpperCase(),
        template,
        // Express routes `/readyz/` as `/readyz` (non-strict routing), and the validator too.
        pattern: new RegExp(`^${template.replace(/\/$/, '').replace(/\{[^}]+\}/g, '[^/]+')}/?$`),
        statuses: new Set(Object.keys(op.responses ?? {}).map(Number)),
        errorMedia: Object.entries(op.responses ?? {})
          .filter(([code]) => Number(code) >= 400 && Number(code) < 500)
          .flatMap(([, r]) =>
            Object.keys(deref(r as { $ref?: string; content?: object }).content ?? {}),
          ),
        params: [...(item.parameters ?? []), ...(op.parameters ?? [])].map(deref),
        bodyExamples: [
          ...(media?.example !== undefined ? [media.example] : []),
          ...Object.values(media?.examples ?? {}).map((e) => e.value),
        ],
      };
    }),
);
const TEMPLATES = Object.keys(contract.paths);

const operationOf = (method: string, pathname: string) =>
  OPERATIONS.find((o) => o.method === method && o.pattern.test(pathname));

/**
 * Errors are problem+json, except under paths whose operations declare their client errors as
 * plain JSON: the route-manager compatibility paths answer FastAPI's `{"detail"}` for anything
 * below them, as FastAPI itself does. The closest contract path a request falls under decides.
 */
function errorStyleOf(pathname: string): 'problem' | 'detail' {
  const under = (o: Operation) =>
    new RegExp(`^${o.template.replace(/\/$/, '').replace(/\{[^}]+\}/g, '[^/]+')}(/.*)?$`).test(
      pathname,
    );
  const candidates = OPERATIONS.filter(under);
  const depth = (o: Operation) => o.template.replace(/\/$/, '').split('/').length;
  const closest = Math.max(0, ...candidates.map(depth));
  const media = candidates.filter((o) => depth(o) === closest).flatMap((o) => o.errorMedia);
  return media.length > 0 && media.every((m) => m === 'application/json') ? 'detail' : 'problem';
}

// --- generators: chaos -----------------------------------------------------------------------

const text = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary-ascii', maxLength: 40 }),
);
const pathParam = fc.oneof(
  fc.constantFrom('localhost', 'h1', 'all', 'eth0', 'lo', '..', '.', '%00', 'a'.repeat(300)),
  fc.uuid(),
  text.filter((s) => s.length > 0).map(encodeURIComponent),
);
const contractPath = fc
  .tuple(fc.constantFrom(...TEMPLATES), fc.array(pathParam, { minLength: 4, maxLength: 4 }))
  .map(([template, params]) => {
    let i = 0;
    return template.replace(/\{[^}]+\}/g, () => params[i++]!);
  });
const chaosPath = fc.oneof(
  { weight: 6, arbitrary: contractPath },
  { weight: 1, arbitrary: contractPath.map((p) => p + '/') },
  { weight: 1, arbitrary: fc.tuple(contractPath, pathParam).map(([p, s]) => `${p}/${s}`) },
  { weight: 1, arbitrary: fc.webPath().map((p) => p || '/') },
  { weight: 1, arbitrary: fc.constantFrom('/docs/', '/docs/x.js', '/v1', '/', '//v1/hosts') },
);
const QUERY_NAMES = [
  ...new Set(
    OPERATIONS.flatMap((o) => o.params.filter((p) => p.in === 'query').map((p) => p.name)),
  ),
];
const chaosQuery = fc
  .array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom(...QUERY_NAMES),
        fc.constantFrom('a[b]', 'token', '__proto__', 'constructor'),
        fc.string({ maxLength: 10 }),
      ),
      fc.oneof(
        fc.constantFrom('true', 'false', '0', '1', '-1', '601', '1e3', 'queued', ''),
        fc.integer().map(String),
        text,
      ),
    ),
    { maxLength: 4 },
  )
  .map((pairs) =>
    pairs.length === 0
      ? ''
      : '?' + pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&'),
  );
const printable = fc.stringMatching(/^[\x20-\x7e]{0,60}$/);
const FORBIDDEN_HEADERS = new Set([
  'authorization',
  'connection',
  'content-length',
  'content-type',
  'expect',
  'host',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
const chaosRequest = fc.record({
  method: fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom('GET', 'POST') },
    { weight: 2, arbitrary: fc.constantFrom('PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS') },
  ),
  path: chaosPath,
  query: chaosQuery,
  authorization: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...Object.values(TOKENS)).map((t) => `Bearer ${t}`) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: printable },
    { weight: 1, arbitrary: printable.map((t) => `Bearer ${t}`) },
  ),
  contentType: fc.oneof(
    { weight: 4, arbitrary: fc.constant('application/json') },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        undefined,
        'application/problem+json',
        'application/json; charset=utf-16',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
      ),
    },
    { weight: 1, arbitrary: printable },
  ),
  headers: fc.dictionary(
    fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/).filter((h) => !FORBIDDEN_HEADERS.has(h)),
    printable.map((v) => v.trim()),
    { maxKeys: 3 },
  ),
  body: fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    {
      weight: 1,
      arbitrary: fc.constant(JSON.stringify({ playbook: 'ping', pad: 'x'.repeat(2_000_000) })),
    },
  ),
});

// --- generators: contract-shaped -------------------------------------------------------------

/** Marks a uuid path parameter to fill, at request time, with an id the fuzzing created. */
const KNOWN_ID = 'KNOWN_ID';
const PLAUSIBLE: Record<string, fc.Arbitrary<string>> = {
  host: fc.constantFrom('localhost', 'h1', 'lab'),
  ifname: fc.constantFrom('lo', 'eth0'),
  playbook: fc.constantFrom('ping', 'gather_state'),
  wait: fc.constantFrom('0', '1'),
};

function plausibleValue(param: Parameter): fc.Arbitrary<string> {
  const schema = deref(param.schema ?? {});
  const options: fc.Arbitrary<string>[] = [];
  if (PLAUSIBLE[param.name]) options.push(PLAUSIBLE[param.name]!);
  for (const example of [param.example, schema.example]) {
    if (example !== undefined) options.push(fc.constant(String(example)));
  }
  if (schema.enum) options.push(fc.constantFrom(...schema.enum.map(String)));
  else if (schema.type === 'boolean') options.push(fc.constantFrom('true', 'false'));
  else if (schema.type === 'integer') {
    const min = schema.minimum ?? 0;
    options.push(
      fc.integer({ min, max: Math.min(schema.maximum ?? min + 100, min + 100) }).map(String),
    );
  } else if (schema.format === 'uuid') options.push(fc.constant(KNOWN_ID), fc.uuid());
  if (options.length === 0) options.push(fc.constant('x'));
  return fc.oneof(...options);
}

const plausibleRun = fc.record(
  {
    playbook: fc.constantFrom('ping', 'pause', 'net/addresses', 'missing'),
    limit: fc.constantFrom(['localhost'], ['h1'], ['all'], ['lab'], ['nope']),
    extravars: fc.dictionary(
      fc.constantFrom('greeting', 'count', 'greeting', 'ansible_user'),
      fc.jsonValue(),
      {
        maxKeys: 2,
      },
    ),
  },
  { requiredKeys: ['playbook'] },
);

/** A body for the operation: one of its contract examples, maybe with a key dropped or added. */
function plausibleBody(op: Operation): fc.Arbitrary<string | undefined> {
  if (op.method === 'POST' && op.template === '/v1/runs')
    return plausibleRun.map((b) => JSON.stringify(b));
  if (op.bodyExamples.length === 0) return fc.constant(undefined);
  const mutate = (value: unknown, drop: boolean, add: boolean): unknown => {
    if (Array.isArray(value)) return value.map((v) => mutate(v, drop, add));
    if (!value || typeof value !== 'object') return value;
    const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    if (drop) delete copy[Object.keys(copy)[0]!];
    if (add) copy.unexpected = true;
    return copy;
  };
  return fc
    .tuple(fc.constantFrom(...op.bodyExamples), fc.boolean(), fc.boolean(), fc.nat(9))
    .map(([example, drop, add, dice]) =>
      JSON.stringify(dice < 6 ? example : mutate(example, drop, add)),
    );
}

const contractRequest = fc.constantFrom(...OPERATIONS).chain((op) => {
  const inPath = op.params.filter((p) => p.in === 'path');
  const inQuery = op.params.filter((p) => p.in === 'query');
  return fc.record({
    method: fc.constant(op.method),
    path: fc
      .tuple(...inPath.map(plausibleValue))
      .map((values) =>
        inPath.reduce((p, param, i) => p.replace(`{${param.name}}`, values[i]!), op.template),
      ),
    query: fc
      .subarray(inQuery)
      .chain((chosen) =>
        fc.tuple(
          ...chosen.map((p) => plausibleValue(p).map((v) => `${p.name}=${encodeURIComponent(v)}`)),
        ),
      )
      .map((pairs) => (pairs.length ? `?${pairs.join('&')}` : '')),
    authorization: fc
      .constantFrom(TOKENS.admin, TOKENS.admin, TOKENS.admin, TOKENS.operator, TOKENS.viewer)
      .map((t) => `Bearer ${t}`),
    contentType: fc.constant<string | undefined>('application/json'),
    headers: fc.constant<Record<string, string>>({}),
    body: plausibleBody(op),
  });
});

// --- the property ----------------------------------------------------------------------------

const INVENTORY = `all:
  hosts:
    localhost:
      ansible_connection: local
  children:
    lab:
      hosts:
        h1:
          ansible_host: 198.51.100.250
          ansible_user: root
`;

describe('fuzzing the HTTP surface, given a server whose runner refuses every run', () => {
  let server: TestServer;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'routeplane-fuzz-'));
    await writeFile(path.join(dir, 'hosts.yml'), INVENTORY);
    server = await startTestServer(
      { ALLOW_LOCAL_WRITES: 'true', INVENTORY: path.join(dir, 'hosts.yml') },
      { runner: refusingRunner() },
    );
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('when a few hundred generated requests are sent, then none is a 500, every 5xx is declared for its operation, and every error is a problem without a stack', async () => {
    const seen = new Map<number, number>();
    const ids: string[] = [];
    await fc.assert(
      fc.asyncProperty(fc.oneof(chaosRequest, contractRequest), async (r) => {
        const known = ids[ids.length - 1] ?? '00000000-0000-4000-8000-000000000000';
        const url = new URL(server.url + r.path.replace(KNOWN_ID, known) + r.query);
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
        const where = `${r.method} ${url.pathname}${url.search} -> ${res.status} ${raw.slice(0, 300)}`;
        const isJson = /^application\/json/.test(res.headers.get('content-type') ?? '');
        const created =
          res.status >= 200 && res.status < 300 && !['GET', 'HEAD'].includes(r.method);
        if (created && isJson) {
          const parsed = JSON.parse(raw) as { id?: string; items?: { id?: string }[] };
          for (const id of [parsed.id, ...(parsed.items ?? []).map((i) => i.id)]) {
            if (id) ids.push(id);
          }
        }

        expect(res.status, where).not.toBe(500);
        if (res.status >= 500) {
          const op = operationOf(r.method, url.pathname);
          expect(op, `undeclared operation answered 5xx: ${where}`).toBeDefined();
          expect([...op!.statuses], `${op!.method} ${op!.template}: ${where}`).toContain(
            res.status,
          );
        }
        const readiness = /^\/readyz\/?$/.test(url.pathname) && res.status === 503;
        if (res.status >= 400 && !readiness) {
          expectNoStack(raw);
        }
        if (res.status >= 400 && !readiness && errorStyleOf(url.pathname) === 'detail') {
          expect(res.headers.get('content-type'), where).toMatch(/^application\/json/);
          if (r.method !== 'HEAD') expect(JSON.parse(raw), where).toHaveProperty('detail');
        } else if (res.status >= 400 && !readiness) {
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
      // A failure prints its seed; FUZZ_SEED=<seed> replays it, FUZZ_RUNS=<n> searches longer.
      {
        numRuns: Number(process.env.FUZZ_RUNS ?? 300),
        seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined,
      },
    );
    if (process.env.FUZZ_RUNS) console.log(JSON.stringify([...seen].sort()));
    // The property must have reached past auth and validation, not only bounced off them.
    expect(
      [...seen.keys()].some((s) => s >= 200 && s < 300),
      JSON.stringify([...seen]),
    ).toBe(true);
  });

  it('when the fuzzing is over, then every run it caused ended in error and none is left queued or running', async () => {
    // Apply runs of fuzzed routes are retried with backoff (the runner refuses each), so one
    // may be between queued and error at any moment: wait for a moment with none going.
    const notError = () =>
      server.database.db.knex('runs').whereNot('status', 'error').distinct().pluck('status');
    await eventually('no run queued or running', async () =>
      (await notError()).length === 0 ? true : undefined,
    );
    const errors = await server.database.db.knex('runs').pluck('error');
    for (const e of errors) expect(e).toMatch(/refused run /);
  });

  it('when the fuzzing is over, then the server still answers', async () => {
    expect((await server.request('GET', '/healthz', { token: null })).status).toBe(200);
    expect((await server.request('GET', '/v1/runs?limit=1')).status).toBe(200);
  });
});
