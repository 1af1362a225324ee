import { ValidationError } from '../http/errors.ts';

/** The types a catalog sidecar may declare, named as Ansible's argument specs name them. */
export const VAR_TYPES = ['str', 'int', 'bool', 'list', 'dict'] as const;
export type VarType = (typeof VAR_TYPES)[number];

export interface VarSpec {
  name: string;
  type: VarType;
  required: boolean;
  default?: unknown;
  description?: string;
}

export class SidecarError extends Error {
  override name = 'SidecarError';
}

const VAR_NAME = /^[a-z][a-z0-9_]*$/;

/**
 * Names Ansible gives a meaning of its own. An extra variable overrides every other source, so
 * setting one of these from a request would change which host a run connects to, how, or what
 * the playbook thinks it is running on: `inventory_hostname` is templated by the ssh plugin.
 */
const MAGIC_NAMES = new Set([
  'inventory_hostname',
  'inventory_hostname_short',
  'inventory_dir',
  'inventory_file',
  'hostvars',
  'groups',
  'group_names',
  'omit',
  'playbook_dir',
  'play_hosts',
  'role_name',
  'role_names',
  'role_path',
  'environment',
  'vars',
]);

/** Why a variable name can never be set from a request, or null when it can. */
export function reservedReason(name: string): string | null {
  if (name.startsWith('ansible_')) {
    return 'is an Ansible connection or magic variable (ansible_*) and cannot be set';
  }
  if (MAGIC_NAMES.has(name)) return 'is an Ansible magic variable and cannot be set';
  return null;
}

/** Deepest nesting an extra variable's value may have: deeper is no form anyone fills in. */
export const MAX_VALUE_DEPTH = 32;

const pointer = (at: string, key: string | number) =>
  `${at}/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`;

/**
 * The first problem in a value, as a JSON pointer below `at` and why, or null: a key, at any
 * depth, that Ansible's JSON loader would act on (`__ansible_vault` is decrypted with the
 * controller's vault password, `__ansible_unsafe` unwrapped), or nesting deeper than
 * MAX_VALUE_DEPTH. Walked with a stack of its own: a hostile body must not exhaust the call
 * stack.
 */
export function valueProblem(value: unknown, at: string): { at: string; why: string } | null {
  const stack: { value: unknown; at: string; depth: number }[] = [{ value, at, depth: 0 }];
  while (stack.length > 0) {
    const { value: v, at: here, depth } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= MAX_VALUE_DEPTH) {
      return { at: here, why: `nests deeper than ${MAX_VALUE_DEPTH} levels` };
    }
    const entries: [string | number, unknown][] = Array.isArray(v)
      ? v.map((x, i) => [i, x])
      : Object.entries(v);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [k, x] = entries[i]!;
      if (typeof k === 'string' && k.startsWith('__ansible')) {
        return { at: pointer(here, k), why: 'keys starting with __ansible are not allowed' };
      }
      stack.push({ value: x, at: pointer(here, k), depth: depth + 1 });
    }
  }
  return null;
}

function hasType(value: unknown, type: VarType): boolean {
  switch (type) {
    case 'str':
      return typeof value === 'string';
    case 'int':
      return typeof value === 'number' && Number.isSafeInteger(value);
    case 'bool':
      return typeof value === 'boolean';
    case 'list':
      return Array.isArray(value);
    case 'dict':
      return value !== null && typeof value === 'object' && !Array.isArray(value);
  }
}

const TYPE_WORDS: Record<VarType, string> = {
  str: 'a string',
  int: 'an integer',
  bool: 'a boolean',
  list: 'a list',
  dict: 'an object',
};

function asMapping(value: unknown, where: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SidecarError(`${where} must be a mapping`);
  }
  return value as Record<string, unknown>;
}

/**
 * Reads a sidecar (`NAME.vars.yml`, already parsed): a mapping of variable name to
 * `{type, required?, default?, description?}`. A name Ansible reserves makes the whole file
 * invalid: a catalog author must not be able to open what a request may not set.
 */
export function parseSidecar(doc: unknown, file: string): VarSpec[] {
  if (doc === null || doc === undefined) return [];
  const specs: VarSpec[] = [];
  for (const [name, raw] of Object.entries(asMapping(doc, file))) {
    const where = `${file}: ${name}`;
    if (!VAR_NAME.test(name)) throw new SidecarError(`${where}: names match ^[a-z][a-z0-9_]*$`);
    const reserved = reservedReason(name);
    if (reserved) throw new SidecarError(`${where} ${reserved}`);
    const spec = asMapping(raw, where);
    for (const key of Object.keys(spec)) {
      if (!['type', 'required', 'default', 'description'].includes(key)) {
        throw new SidecarError(`${where}: unknown key '${key}'`);
      }
    }
    const type = spec.type as VarType;
    if (!VAR_TYPES.includes(type)) {
      throw new SidecarError(`${where}: type must be one of ${VAR_TYPES.join(', ')}`);
    }
    if (spec.required !== undefined && typeof spec.required !== 'boolean') {
      throw new SidecarError(`${where}: required must be true or false`);
    }
    if (spec.description !== undefined && typeof spec.description !== 'string') {
      throw new SidecarError(`${where}: description must be a string`);
    }
    if ('default' in spec) {
      if (!hasType(spec.default, type)) {
        throw new SidecarError(`${where}: default must be ${TYPE_WORDS[type]}`);
      }
      const problem = valueProblem(spec.default, '');
      if (problem) throw new SidecarError(`${where}: default ${problem.why}`);
    }
    specs.push({
      name,
      type,
      required: spec.required === true,
      ...('default' in spec ? { default: spec.default } : {}),
      ...(spec.description !== undefined ? { description: spec.description } : {}),
    });
  }
  return specs;
}

/**
 * Checks a request's extravars against what the playbook declares, before any process starts,
 * and returns them with declared defaults filled in. Every failure names its key.
 */
export function checkExtravars(
  playbook: string,
  specs: VarSpec[],
  extravars: Record<string, unknown>,
): Record<string, unknown> {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const fail = (key: string, why: string) =>
    ValidationError.field(pointer('/body/extravars', key), why);
  for (const [key, value] of Object.entries(extravars)) {
    const reserved = reservedReason(key);
    if (reserved) throw fail(key, reserved);
    const spec = byName.get(key);
    if (!spec) {
      throw fail(
        key,
        specs.length === 0
          ? `playbook '${playbook}' accepts no extra variables`
          : `is not a variable of playbook '${playbook}' (it accepts ${specs.map((s) => s.name).join(', ')})`,
      );
    }
    if (!hasType(value, spec.type)) throw fail(key, `must be ${TYPE_WORDS[spec.type]}`);
    const problem = valueProblem(value, pointer('/body/extravars', key));
    if (problem) throw ValidationError.field(problem.at, problem.why);
  }
  const out: Record<string, unknown> = {};
  for (const spec of specs) {
    if (spec.name in extravars) out[spec.name] = extravars[spec.name];
    else if (spec.required) throw fail(spec.name, 'is required');
    else if ('default' in spec) out[spec.name] = spec.default;
  }
  return out;
}

/**
 * Marks every value unsafe for Ansible's JSON loader (`-e @file`), so nothing from a request is
 * ever templated: a `{{ lookup('pipe', ...) }}` reaches the playbook as those characters.
 * Ansible wraps nested strings of lists and dicts too (wrap_var is recursive).
 */
export function markUnsafe(vars: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(vars).map(([k, v]) => [k, v === null ? null : { __ansible_unsafe: v }]),
  );
}
