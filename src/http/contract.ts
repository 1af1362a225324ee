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
