import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import ajvFormats from 'ajv-formats';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { REPO } from './contract.ts';

type Json = Record<string, unknown>;

const CONTRACT_ID = 'openapi.yaml';
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
/** Subschema-holding keywords of OpenAPI 3.0 schema objects. */
const SUBSCHEMA_MAPS = ['properties'];
const SUBSCHEMA_LISTS = ['allOf', 'oneOf', 'anyOf'];
const SUBSCHEMA_ONE = ['items', 'additionalProperties', 'not'];

const doc = load(readFileSync(path.join(REPO, 'openapi.yaml'), 'utf8')) as Json & {
  openapi: string;
  paths: Record<string, Json>;
  components: Record<string, Record<string, Json>>;
};

/** A JSON pointer (RFC 6901) to `segments`, percent-encoded for use in a URI fragment. */
const pointer = (segments: string[]) =>
  segments
    .map((s) => '/' + encodeURIComponent(s.replace(/~/g, '~0').replace(/\//g, '~1')))
    .join('');

/** Follows a local `$ref` (`#/components/...`) to its target. */
function deref(value: unknown): Json {
  const ref = (value as { $ref?: unknown }).$ref;
  if (typeof ref !== 'string') return value as Json;
  let node: unknown = doc;
  for (const s of ref.replace(/^#\//, '').split('/')) {
    node = (node as Json | undefined)?.[s.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  if (node === undefined) throw new Error(`openapi.yaml: unresolved $ref ${ref}`);
  return deref(node);
}

const isJson = (mediaType: string) => /^application\/(.+\+)?json(;|$)/.test(mediaType);

interface Media {
  /** How a reader finds it: `POST /v1/runs 202 application/json`. */
  label: string;
  type: string;
  media: Json;
}

/** Every request-body and response media type of every operation, `$ref`s followed. */
function operationMedia(): { requests: Media[]; responses: Media[] } {
  const requests: Media[] = [];
  const responses: Media[] = [];
  const contentOf = (holder: Json, label: string, into: Media[]) => {
    for (const [type, media] of Object.entries((holder.content ?? {}) as Json)) {
      into.push({ label: `${label} ${type}`, type, media: media as Json });
    }
  };
  for (const [template, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      const name = `${method.toUpperCase()} ${template}`;
      if (op.requestBody) contentOf(deref(op.requestBody), `${name} request`, requests);
      for (const [status, response] of Object.entries((op.responses ?? {}) as Json)) {
        contentOf(deref(response), `${name} ${status}`, responses);
      }
    }
  }
  return { requests, responses };
}

/** A media type documents its body when it, or the schema it names, carries an example. */
function hasExample(media: Json): boolean {
  if (media.example !== undefined) return true;
  if (media.examples && Object.keys(media.examples as Json).length > 0) return true;
  return media.schema !== undefined && deref(media.schema).example !== undefined;
}

const offenders = (media: Media[]) =>
  media
    .filter((m) => isJson(m.type) && m.media.schema !== undefined)
    .filter((m) => !hasExample(m.media))
    .map((m) => m.label);

interface Example {
  label: string;
  value: unknown;
  /** The schema it must satisfy, as a `$ref` into the contract. */
  schemaRef: string;
}

/** Every `example` of a schema object and of its subschemas, each against its own schema. */
function schemaExamples(schema: unknown, at: string[], into: Example[]): void {
  if (schema === null || typeof schema !== 'object' || '$ref' in schema) return;
  const s = schema as Json;
  if (s.example !== undefined) {
    into.push({
      label: `schema ${at.join('/')}`,
      value: s.example,
      schemaRef: CONTRACT_ID + '#' + pointer(at),
    });
  }
  for (const key of SUBSCHEMA_MAPS) {
    for (const [name, sub] of Object.entries((s[key] ?? {}) as Json)) {
      schemaExamples(sub, [...at, key, name], into);
    }
  }
  for (const key of SUBSCHEMA_LISTS) {
    ((s[key] ?? []) as unknown[]).forEach((sub, i) =>
      schemaExamples(sub, [...at, key, String(i)], into),
    );
  }
  for (const key of SUBSCHEMA_ONE) schemaExamples(s[key], [...at, key], into);
}

/** Every example the contract holds: media, named media examples, schemas and parameters. */
function allExamples(): Example[] {
  const found: Example[] = [];
  const mediaExamples = (media: Json, at: string[], label: string) => {
    if (media.schema === undefined) return;
    const schemaRef = CONTRACT_ID + '#' + pointer([...at, 'schema']);
    if (media.example !== undefined) found.push({ label, value: media.example, schemaRef });
    for (const [name, example] of Object.entries((media.examples ?? {}) as Json)) {
      found.push({ label: `${label} examples.${name}`, value: deref(example).value, schemaRef });
    }
    schemaExamples(media.schema, [...at, 'schema'], found);
  };
  const contentOf = (holder: Json, at: string[], label: string) => {
    for (const [type, media] of Object.entries((holder.content ?? {}) as Json)) {
      mediaExamples(media as Json, [...at, 'content', type], `${label} ${type}`);
    }
  };
  const parameter = (param: Json, at: string[], label: string) => {
    if ('$ref' in param) return; // checked where it is declared, in components/parameters
    if (param.example !== undefined && param.schema !== undefined) {
      found.push({
        label: `${label} parameter ${String(param.name)}`,
        value: param.example,
        schemaRef: CONTRACT_ID + '#' + pointer([...at, 'schema']),
      });
    }
    schemaExamples(param.schema, [...at, 'schema'], found);
  };
  for (const [template, item] of Object.entries(doc.paths)) {
    ((item.parameters ?? []) as Json[]).forEach((p, i) =>
      parameter(p, ['paths', template, 'parameters', String(i)], template),
    );
    for (const method of METHODS) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      const name = `${method.toUpperCase()} ${template}`;
      const opAt = ['paths', template, method];
      ((op.parameters ?? []) as Json[]).forEach((p, i) =>
        parameter(p, [...opAt, 'parameters', String(i)], name),
      );
      const body = op.requestBody as Json | undefined;
      if (body && !('$ref' in body)) contentOf(body, [...opAt, 'requestBody'], `${name} request`);
      for (const [status, response] of Object.entries((op.responses ?? {}) as Json)) {
        if ('$ref' in (response as Json)) continue; // checked once, in components/responses
        contentOf(response as Json, [...opAt, 'responses', status], `${name} ${status}`);
      }
    }
  }
  const components = doc.components ?? {};
  for (const [name, response] of Object.entries(components.responses ?? {})) {
    contentOf(response, ['components', 'responses', name], `components/responses/${name}`);
  }
  for (const [name, body] of Object.entries(components.requestBodies ?? {})) {
    contentOf(body, ['components', 'requestBodies', name], `components/requestBodies/${name}`);
  }
  for (const [name, param] of Object.entries(components.parameters ?? {})) {
    parameter(param, ['components', 'parameters', name], `components/parameters/${name}`);
  }
  for (const [name, schema] of Object.entries(components.schemas ?? {})) {
    schemaExamples(schema, ['components', 'schemas', name], found);
  }
  return found;
}

/**
 * Ajv over the whole contract, added as one schema, so every `$ref: '#/components/...'` resolves
 * inside it. OpenAPI 3.0 schemas are a subset of JSON Schema plus `nullable`, which Ajv's default
 * (draft-07) dialect supports; `example` and the other OpenAPI keywords are ignored (strict off).
 * The contract uses no boolean `exclusiveMinimum`/`exclusiveMaximum`, the one 3.0 form that
 * draft-07 reads differently.
 */
function contractValidator(): (schemaRef: string) => ValidateFunction {
  const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
  // A CommonJS module: under NodeNext its default import is the module, whose `default` is the plugin.
  ajvFormats.default(ajv);
  ajv.addSchema(doc, CONTRACT_ID);
  return (schemaRef) => ajv.getSchema(schemaRef) ?? ajv.compile({ $ref: schemaRef });
}

const describeErrors = (validate: ValidateFunction) =>
  (validate.errors ?? [])
    .map((e) => `${e.instancePath || '(root)'} ${e.message} ${JSON.stringify(e.params)}`)
    .join('\n');

describe('openapi.yaml examples', () => {
  it('when the contract is read, then it is OpenAPI 3.0 (nullable), the dialect this check validates', () => {
    // OpenAPI 3.1 schemas are JSON Schema 2020-12: the validator would need ajv/dist/2020.
    expect(doc.openapi).toMatch(/^3\.0\.\d+$/);
  });

  const { requests, responses } = operationMedia();

  it('when an operation takes a JSON request body, then that body has an example', () => {
    expect(requests.length).toBeGreaterThan(0);
    expect(offenders(requests), 'request bodies without an example').toEqual([]);
  });

  it('when an operation answers with a JSON body, then every such response has an example', () => {
    expect(responses.length).toBeGreaterThan(0);
    expect(offenders(responses), 'responses without an example').toEqual([]);
  });

  const validator = contractValidator();
  const examples = allExamples();

  it('when the contract is walked for examples, then it finds them in media, named examples and schemas', () => {
    const labels = examples.map((e) => e.label);
    expect(labels.some((l) => / application\/json$/.test(l))).toBe(true);
    expect(labels.some((l) => / examples\.\w+$/.test(l))).toBe(true);
    expect(labels.some((l) => l.startsWith('schema components/schemas/'))).toBe(true);
  });

  it.each(examples.map((e) => [e.label, e] as const))(
    'when the example of %s is validated against its schema, then it conforms',
    (_, example) => {
      const validate = validator(example.schemaRef);
      expect(validate(example.value), describeErrors(validate)).toBe(true);
    },
  );

  it('when an example breaks its schema, then the validator rejects it', () => {
    // Guards the check itself: a $ref that resolved to nothing would accept anything.
    const validate = validator(CONTRACT_ID + '#' + pointer(['components', 'schemas', 'Route']));
    const route = (doc.components.examples as Record<string, { value: Json }>).Route!.value;
    expect(validate(route)).toBe(true);
    expect(validate({ ...route, id: 'not-a-uuid' })).toBe(false);
    expect(validate({ ...route, sync: { ...(route.sync as Json), state: 'unknown' } })).toBe(false);
    const withoutCreatedAt = { ...route };
    delete withoutCreatedAt.created_at;
    expect(validate(withoutCreatedAt)).toBe(false);
    expect(validate({ ...route, metric: null }), 'metric is not nullable').toBe(false);
  });

  it('when a nullable field of an example is null, then the validator accepts it', () => {
    const validate = validator(CONTRACT_ID + '#' + pointer(['components', 'schemas', 'Route']));
    const route = (doc.components.examples as Record<string, { value: Json }>).Route!.value;
    expect(validate({ ...route, via: null, dev: 'eth0', delete_at: null })).toBe(true);
  });
});
