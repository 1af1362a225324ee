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
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  items?: Schema;
  properties?: Record<string, Schema>;
  oneOf?: Schema[];
  anyOf?: Schema[];
  allOf?: Schema[];
  example?: unknown;
};
type Parameter = { $ref?: string; name: string; in: string; schema?: Schema; example?: unknown };
type Media = {
  example?: unknown;
  examples?: Record<string, { value?: unknown; $ref?: string }>;
};
type OperationObject = {
  responses?: Record<string, unknown>;
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, Media & { schema?: Schema }> };
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
  bodySchema: Schema | undefined;
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
        bodySchema: media?.schema,
        bodyExamples: [
          ...(media?.example !== undefined ? [media.example] : []),
          // Named examples may be written inline or as a $ref to components/examples.
          ...Object.values(media?.examples ?? {}).map(
            (e) => deref(e as { $ref?: string; value?: unknown }).value,
          ),
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
      // The edges of the contract's range, and one past each.
      fc.constantFrom(...integerEdges(schema).map((e) => String(e.value))),
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

// --- generators: the contract's limits ------------------------------------------------------

/** A value at a limit of the contract: at the edge (in range) or one past it (out of range). */
interface Edge {
  value: number;
  inRange: boolean;
  label: string;
}

function edges(min: number | undefined, max: number | undefined, floor = -Infinity): Edge[] {
  const out: Edge[] = [];
  if (min !== undefined) {
    if (min - 1 >= floor) out.push({ value: min - 1, inRange: false, label: `min-1 (${min - 1})` });
    out.push({ value: min, inRange: true, label: `min (${min})` });
  }
  if (max !== undefined) {
    out.push({ value: max, inRange: true, label: `max (${max})` });
    out.push({ value: max + 1, inRange: false, label: `max+1 (${max + 1})` });
  }
  return out;
}

function integerEdges(schema: Schema): Edge[] {
  return edges(schema.minimum, schema.maximum);
}

/** minLength/maxLength, or the `{m,n}` of a one-class anchored pattern such as `^[a-z]{1,15}$`. */
function lengthLimits(schema: Schema): { min?: number; max?: number } | null {
  if (schema.minLength !== undefined || schema.maxLength !== undefined) {
    return { min: schema.minLength, max: schema.maxLength };
  }
  const m = /^\^\[[^\]]+\]\{(\d+),(\d+)\}\$$/.exec(schema.pattern ?? '');
  return m ? { min: Number(m[1]), max: Number(m[2]) } : null;
}

type Kind = 'integer' | 'length' | 'items' | 'properties';
interface Limit {
  kind: Kind;
  /** Where the value goes: a body path (keys and indexes), or a parameter. */
  at: { body: (string | number)[] } | { param: Parameter };
  min?: number;
  max?: number;
  /** An element to repeat when filling an array with no element of its own. */
  sample?: unknown;
}

/** Every limit of a body schema, with the path of the value it bounds. */
function bodyLimits(node: Schema, at: (string | number)[], out: Limit[], depth = 0): Limit[] {
  if (depth > 8) return out;
  const s = deref(node);
  for (const branch of [...(s.oneOf ?? []), ...(s.anyOf ?? []), ...(s.allOf ?? [])]) {
    bodyLimits(branch, at, out, depth + 1);
  }
  const where = { body: at };
  if (s.type === 'integer' && (s.minimum !== undefined || s.maximum !== undefined)) {
    out.push({ kind: 'integer', at: where, min: s.minimum, max: s.maximum });
  }
  const length = s.type === 'string' ? lengthLimits(s) : null;
  if (length) out.push({ kind: 'length', at: where, ...length });
  if (s.type === 'array') {
    if (s.minItems !== undefined || s.maxItems !== undefined) {
      const items = s.items ? deref(s.items) : {};
      out.push({
        kind: 'items',
        at: where,
        min: s.minItems,
        max: s.maxItems,
        // A valid element where the contract shows one (a port, a prefix), else a letter.
        sample:
          (items as { example?: unknown }).example ??
          (Array.isArray((s as { example?: unknown }).example)
            ? ((s as { example: unknown[] }).example[0] as unknown)
            : undefined) ??
          (items.type === 'string' ? 'a' : undefined),
      });
    }
    if (s.items) bodyLimits(s.items, [...at, 0], out, depth + 1);
  }
  if (s.minProperties !== undefined || s.maxProperties !== undefined) {
    out.push({ kind: 'properties', at: where, min: s.minProperties, max: s.maxProperties });
  }
  for (const [key, child] of Object.entries(s.properties ?? {})) {
    bodyLimits(child, [...at, key], out, depth + 1);
  }
  return out;
}

function paramLimits(param: Parameter): Limit[] {
  const s = deref(param.schema ?? {});
  const at = { param };
  if (s.type === 'integer' && (s.minimum !== undefined || s.maximum !== undefined)) {
    return [{ kind: 'integer', at, min: s.minimum, max: s.maximum }];
  }
  const length = s.type === 'string' ? lengthLimits(s) : null;
  return length ? [{ kind: 'length', at, ...length }] : [];
}

/** The value of `limit` at size or number `n`; `existing` is what the example had there. */
function valueAt(limit: Limit, n: number, existing: unknown): unknown {
  switch (limit.kind) {
    case 'integer':
      return n;
    case 'length':
      return 'a'.repeat(n);
    case 'items': {
      const element = Array.isArray(existing) && existing.length > 0 ? existing[0] : limit.sample;
      return Array.from({ length: n }, () => structuredClone(element));
    }
    case 'properties':
      return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
  }
}

/** A copy of `base` with the value at `at` replaced, or undefined when `base` has no such place. */
function replaced(base: unknown, at: (string | number)[], make: (old: unknown) => unknown) {
  if (at.length === 0) return make(base);
  const copy = structuredClone(base) as Record<string | number, unknown>;
  let node: unknown = copy;
  for (const [i, key] of at.entries()) {
    const fits = typeof key === 'number' ? Array.isArray(node) : isPlainObject(node);
    if (!fits) return undefined;
    const container = node as Record<string | number, unknown>;
    if (i === at.length - 1) {
      container[key] = make(container[key]);
      return copy;
    }
    if (container[key] === undefined) return undefined;
    node = container[key];
  }
  return undefined;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

interface BoundaryCase {
  op: Operation;
  what: string;
  inRange: boolean;
  path: string;
  query: string;
  body: string | undefined;
}

/** A path parameter's everyday value, for requests whose limit is elsewhere. */
function everydayParam(param: Parameter): string {
  const schema = deref(param.schema ?? {});
  const example = param.example ?? schema.example;
  if (PLAUSIBLE_DEFAULT[param.name]) return PLAUSIBLE_DEFAULT[param.name]!;
  if (example !== undefined) return String(example);
  if (schema.format === 'uuid') return KNOWN_ID;
  return 'x';
}
const PLAUSIBLE_DEFAULT: Record<string, string> = { host: 'h1', ifname: 'eth0', playbook: 'ping' };

/**
 * A contract example made to reach past the domain checks, so that a value at a limit gets as
 * far as the database and the runner: hosts of the fuzz inventory, no schedule (an example's
 * dates pass), everything else as the example says.
 */
function everyday(example: unknown): unknown {
  if (Array.isArray(example)) return example.map(everyday);
  if (!isPlainObject(example)) return example;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(example)) {
    if (key === 'create_at' || key === 'delete_at') continue;
    if (key === 'host') out[key] = 'h1';
    else if (key === 'limit' && Array.isArray(value)) out[key] = ['h1'];
    else out[key] = everyday(value);
  }
  return out;
}

/** Every limit of every operation of the contract, at min-1, min, max and max+1. */
function boundaryCases(): BoundaryCase[] {
  const cases: BoundaryCase[] = [];
  for (const op of OPERATIONS) {
    const inPath = op.params.filter((p) => p.in === 'path');
    const fill = (override?: [Parameter, string]) =>
      inPath.reduce(
        (p, param) =>
          p.replace(
            `{${param.name}}`,
            override?.[0] === param ? override[1] : everydayParam(param),
          ),
        op.template,
      );
    const firstExample = op.bodyExamples.map(everyday)[0];
    const everydayBody = firstExample === undefined ? undefined : JSON.stringify(firstExample);
    for (const param of op.params.filter((p) => p.in === 'path' || p.in === 'query')) {
      for (const limit of paramLimits(param)) {
        for (const edge of edges(limit.min, limit.max, limit.kind === 'integer' ? -Infinity : 0)) {
          const value = String(valueAt(limit, edge.value, undefined));
          const inPathToo = param.in === 'path';
          // An empty path segment is another path, not an empty value.
          if (inPathToo && value === '') continue;
          cases.push({
            op,
            what: `${param.in} ${param.name} ${limit.kind} ${edge.label}`,
            inRange: edge.inRange,
            path: inPathToo ? fill([param, encodeURIComponent(value)]) : fill(),
            query: inPathToo ? '' : `?${param.name}=${encodeURIComponent(value)}`,
            body: everydayBody,
          });
        }
      }
    }
    if (!op.bodySchema) continue;
    const seen = new Set<string>();
    for (const limit of bodyLimits(op.bodySchema, [], [])) {
      const at = (limit.at as { body: (string | number)[] }).body;
      for (const edge of edges(limit.min, limit.max, limit.kind === 'integer' ? -Infinity : 0)) {
        for (const base of op.bodyExamples.map(everyday)) {
          const body = replaced(base, at, (old) => valueAt(limit, edge.value, old));
          if (body === undefined) continue;
          const what = `body /${at.join('/')} ${limit.kind} ${edge.label}`;
          const text = JSON.stringify(body);
          if (seen.has(what + text.length)) continue;
          seen.add(what + text.length);
          cases.push({ op, what, inRange: edge.inRange, path: fill(), query: '', body: text });
        }
      }
    }
  }
  return cases;
}

/** What the validator says when a value is past a limit (Ajv's wording). */
const LIMIT_COMPLAINT =
  /must be [<>]=|must NOT have (more|fewer) than|must match pattern|must NOT have more than \d+ items|must NOT have fewer than \d+ items/;

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

  it('when every integer and length limit of the contract is sent at min-1, min, max and max+1, then out of range is a 400 or 422 and in range is never a 500 nor a complaint about the limit', async () => {
    const cases = boundaryCases();
    // The contract's limits were found, the kernel's 32-bit ones among them.
    const names = cases.map((c) => `${c.op.method} ${c.op.template} ${c.what}`);
    for (const expected of [
      'POST /v1/routes body /metric integer max+1 (4294967296)',
      'POST /v1/routes body /0/table integer max (4294967295)',
      'POST /v1/routes body / items max+1 (20001)',
      'PATCH /v1/routes/{id} body /metric integer min-1 (-1)',
      'POST /v1/routes body /to length max+1 (65)',
      'POST /v1/routes body /dev length max (15)',
      'POST /v1/runs body /limit items max+1 (501)',
      'GET /v1/routes query limit integer max+1 (1001)',
    ]) {
      expect(names).toContain(expected);
    }
    const ids: string[] = [];
    const outcomes = new Map<string, number>();
    const check = async (c: BoundaryCase) => {
      const known = ids[ids.length - 1] ?? '00000000-0000-4000-8000-000000000000';
      const url = new URL(server.url + c.path.replace(KNOWN_ID, known) + c.query);
      const withBody = c.op.method !== 'GET' && c.body !== undefined;
      const res = await fetch(url, {
        method: c.op.method,
        headers: {
          authorization: `Bearer ${TOKENS.admin}`,
          ...(withBody ? { 'content-type': 'application/json' } : {}),
        },
        body: withBody ? c.body : undefined,
      });
      const raw = await res.text();
      const where = `${c.op.method} ${c.op.template} ${c.what} (${c.inRange ? 'in' : 'out of'} range) -> ${res.status} ${raw.slice(0, 300)}`;
      outcomes.set(
        `${c.inRange} ${res.status}`,
        (outcomes.get(`${c.inRange} ${res.status}`) ?? 0) + 1,
      );
      if (res.status >= 200 && res.status < 300 && c.op.method !== 'GET') {
        const parsed = JSON.parse(raw) as { id?: string };
        if (parsed.id) ids.push(parsed.id);
      }
      expect(res.status, where).not.toBe(500);
      if (res.status >= 500) expect([...c.op.statuses], where).toContain(res.status);
      if (res.status >= 400) expectNoStack(raw);
      const style = errorStyleOf(url.pathname);
      if (!c.inRange) {
        // Past a limit: the request's fault, said in the surface's own error style.
        expect([400, 413, 422], where).toContain(res.status);
        expect(res.headers.get('content-type'), where).toMatch(
          style === 'detail' ? /^application\/json/ : /^application\/problem\+json/,
        );
      } else if (res.status === 400 || res.status === 422) {
        // At the edge: maybe a domain error ('aaaa' is no prefix), never the limit itself.
        expect(raw, where).not.toMatch(LIMIT_COMPLAINT);
      }
    };
    // Every case once, in order (fast-check's examples), then a few more drawn at random.
    await fc.assert(fc.asyncProperty(fc.constantFrom(...cases), check), {
      examples: cases.map((c) => [c] as [BoundaryCase]),
      // The examples count within numRuns: room for all of them and twenty drawn ones.
      numRuns: cases.length + 20,
      seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined,
    });
    // Both sides of the limits were reached: refusals and successes.
    const statuses = [...outcomes.keys()];
    expect(
      statuses.some((k) => k.startsWith('false 4')),
      JSON.stringify([...outcomes]),
    ).toBe(true);
    expect(
      statuses.some((k) => /^true 2/.test(k)),
      JSON.stringify([...outcomes]),
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
