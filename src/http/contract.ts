import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';
import type { OpenAPIV3 } from 'express-openapi-validator/dist/framework/types.js';

export const CONTRACT_PATH = fileURLToPath(new URL('../../openapi.yaml', import.meta.url));

/** openapi.yaml, read once: the validator, the docs page and the role checks all use it. */
export function loadContract(): { yaml: string; document: OpenAPIV3.DocumentV3 } {
  const yaml = readFileSync(CONTRACT_PATH, 'utf8');
  return { yaml, document: load(yaml) as OpenAPIV3.DocumentV3 };
}

/**
 * The contract as the validator gets it: without its examples. They are documentation, and
 * the validator's Ajv (draft-04, where `id` is a schema keyword) walks every key of the
 * components it compiles, so two examples holding the same `id` value made every response
 * validation fail as "resolves to more than one schema".
 */
export function withoutExamples<T>(node: T, parentKey = ''): T {
  if (Array.isArray(node)) return node.map((v) => withoutExamples(v)) as T;
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    // Under `properties` a key is a field name, which may well be "example".
    if ((key === 'example' || key === 'examples') && parentKey !== 'properties') continue;
    out[key] = withoutExamples(value, key);
  }
  return out as T;
}
