import { readFileSync } from 'node:fs';
import path from 'node:path';
import { load } from 'js-yaml';
import { isRole, type Role } from '../../src/auth/roles.ts';

export const REPO = path.resolve(import.meta.dirname, '../..');

type Json = Record<string, unknown>;

export interface SampleOperation {
  operationId: string;
  method: string;
  /** The path template, e.g. /v1/runs/{id}. */
  template: string;
  /** A concrete path for it, built from each parameter's example (or a harmless stand-in). */
  path: string;
  /** null: public (`security: []`). */
  role: Role | null;
  hasBody: boolean;
  /** The media type the contract declares for its 401 and 403 (problem+json unless it says). */
  authErrorType: string;
}

/**
 * The operations of openapi.yaml, read independently of scripts/kong-generate.ts so a bug
 * there cannot hide in its own test.
 */
export function sampleOperations(file = path.join(REPO, 'openapi.yaml')): SampleOperation[] {
  const doc = load(readFileSync(file, 'utf8')) as Json & {
    paths: Record<string, Json>;
    components: Record<string, Record<string, Json>>;
  };
  const deref = (v: unknown): Json => {
    const ref = (v as { $ref?: string }).$ref;
    if (!ref) return v as Json;
    const [, , section, name] = ref.split('/');
    return doc.components[section!]![name!]!;
  };
  const ops: SampleOperation[] = [];
  for (const [template, item] of Object.entries(doc.paths)) {
    for (const [method, value] of Object.entries(item)) {
      if (!['get', 'put', 'post', 'delete', 'patch'].includes(method)) continue;
      const op = value as Json;
      const params = [
        ...((item.parameters ?? []) as unknown[]),
        ...((op.parameters ?? []) as unknown[]),
      ].map(deref);
      const sample = (name: string): string => {
        const p = params.find((x) => x.in === 'path' && x.name === name) ?? {};
        const schema = (p.schema ?? {}) as Json;
        const example = p.example ?? schema.example;
        if (example !== undefined) return String(example);
        if (schema.format === 'uuid') return '00000000-0000-4000-8000-000000000000';
        return schema.type === 'integer' ? '999999' : 'sample-1';
      };
      const security = (op.security ?? doc.security ?? []) as Json[];
      const isPublic = security.length === 0 || security.some((s) => Object.keys(s).length === 0);
      const role = op['x-required-role'];
      const forbidden = deref(((op.responses ?? {}) as Json)['403'] ?? {});
      const types = Object.keys((forbidden.content ?? {}) as Json);
      ops.push({
        operationId: String(op.operationId),
        method: method.toUpperCase(),
        template,
        path: template.replace(/\{([^}]+)\}/g, (_, name: string) =>
          encodeURIComponent(sample(name)),
        ),
        role: isPublic ? null : isRole(role) ? role : ('missing' as Role),
        hasBody: op.requestBody !== undefined,
        authErrorType: types[0] ?? 'application/problem+json',
      });
    }
  }
  return ops;
}
