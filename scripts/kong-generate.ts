// `npm run kong:generate`: writes kong/kong.yml, Kong's DB-less configuration, from openapi.yaml
// (one route per operation, ACL groups from `x-required-role`) and kong/consumers.yml.
// `--check` only compares and exits 1 when the committed file is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { COLLECTION_STYLE, dump, load, visit } from 'js-yaml';
import * as prettier from 'prettier';
import { isRole, ROLES, roleSatisfies, type Role } from '../src/auth/roles.ts';

export const REPO = path.resolve(import.meta.dirname, '..');
export const OPENAPI_YAML = path.join(REPO, 'openapi.yaml');
export const CONSUMERS_YML = path.join(REPO, 'kong/consumers.yml');
export const KONG_YML = path.join(REPO, 'kong/kong.yml');

/** Environment variables scripts/kong-render.mjs fills in; the committed file holds no secret. */
export const PLACEHOLDER = {
  upstreamUrl: 'ROUTEPLANE_UPSTREAM_URL',
  gatewaySecret: 'GATEWAY_SECRET',
  uiOrigin: 'UI_ORIGIN',
} as const;

/** `dashboard` → KONG_KEY_DASHBOARD; `${NAME}_NEXT` is the optional second key for rotation. */
export function keyVariable(username: string): string {
  return `KONG_KEY_${username.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
/** Seconds Kong waits for the API beyond the longest `?wait=` the contract allows. */
const TIMEOUT_MARGIN_S = 60;
const RATE_LIMIT_PER_MINUTE = 600;
/** Above the API's own BODY_LIMIT default, so the API answers oversize bodies as problem+json. */
const MAX_BODY_MB = 2;
const CONSUMER_HEADERS = [
  'X-Consumer-ID',
  'X-Consumer-Custom-ID',
  'X-Consumer-Username',
  'X-Consumer-Groups',
  'X-Credential-Identifier',
  'X-Anonymous-Consumer',
];

export interface ContractOperation {
  operationId: string;
  method: string;
  path: string;
  /** null: the operation is public (`security: []`). */
  role: Role | null;
}

interface OpenApiDocument {
  security?: unknown[];
  paths?: Record<string, Record<string, unknown>>;
  components?: Record<string, Record<string, unknown>>;
}

interface ConsumerSpec {
  username: string;
  role: Role;
}

type Json = Record<string, unknown>;

function deref(doc: OpenApiDocument, value: unknown): Json {
  const ref = (value as { $ref?: string } | undefined)?.$ref;
  if (!ref) return (value ?? {}) as Json;
  const [, section, name] = /^#\/components\/([^/]+)\/([^/]+)$/.exec(ref) ?? [];
  const target = section && name ? doc.components?.[section]?.[name] : undefined;
  if (!target) throw new Error(`openapi.yaml: unresolved $ref ${ref}`);
  return target as Json;
}

/** Every operation of the contract, in file order, with the role it requires. */
export function contractOperations(doc: OpenApiDocument): ContractOperation[] {
  const ops: ContractOperation[] = [];
  for (const [p, item] of Object.entries(doc.paths ?? {})) {
    for (const method of HTTP_METHODS) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      const where = `${method.toUpperCase()} ${p}`;
      const security = (op.security ?? doc.security ?? []) as Json[];
      const isPublic = security.length === 0 || security.some((s) => Object.keys(s).length === 0);
      const role = op['x-required-role'];
      if (!isPublic && !isRole(role)) {
        throw new Error(`openapi.yaml: ${where} is protected but has no valid x-required-role`);
      }
      if (typeof op.operationId !== 'string') throw new Error(`openapi.yaml: ${where} has no id`);
      ops.push({
        operationId: op.operationId,
        method: method.toUpperCase(),
        path: p,
        role: isPublic ? null : (role as Role),
      });
    }
  }
  return ops;
}

/** The longest `wait` query parameter any operation accepts, in seconds. */
function longestWaitS(doc: OpenApiDocument): number {
  let longest = 0;
  for (const item of Object.values(doc.paths ?? {})) {
    const shared = (item.parameters ?? []) as unknown[];
    for (const method of HTTP_METHODS) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      for (const raw of [...shared, ...((op.parameters ?? []) as unknown[])]) {
        const param = deref(doc, raw);
        const max = (deref(doc, param.schema) as { maximum?: unknown }).maximum;
        if (param.in === 'query' && param.name === 'wait' && typeof max === 'number') {
          longest = Math.max(longest, max);
        }
      }
    }
  }
  return longest;
}

/** The groups whose members may call an operation that needs `role`: it and every role above. */
export function groupsFor(role: Role): Role[] {
  return ROLES.filter((r) => roleSatisfies(r, role));
}

const escapeRegex = (s: string) => s.replace(/[.*+?^$()|[\]\\]/g, '\\$&');

/**
 * `/v1/runs/{id}/cancel` → `~/v1/runs/[^/]+/cancel/?$`: Kong regex paths, anchored at both
 * ends. A trailing slash is optional, as it is for Express's (non-strict) routing behind.
 */
export function pathRegex(p: string): string {
  const parts = p
    .replace(/\/+$/, '')
    .split(/(\{[^}/]+\})/)
    .map((part) => (part.startsWith('{') ? '[^/]+' : escapeRegex(part)));
  return `~${parts.join('')}/?$`;
}

/** Concrete paths win over templated ones (`/v1/routes/history` over `/v1/routes/{id}`). */
function regexPriority(p: string): number {
  return p.split('/').filter((seg) => seg && !seg.includes('{')).length;
}

const slug = (p: string) =>
  p
    .replace(/[{}]/g, '')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .join('-');

function parseConsumers(text: string): ConsumerSpec[] {
  const doc = load(text) as { consumers?: unknown };
  if (!Array.isArray(doc?.consumers)) throw new Error('kong/consumers.yml: needs a consumers list');
  const seen = new Set<string>();
  return doc.consumers.map((raw: unknown, i: number) => {
    const { username, role } = (raw ?? {}) as { username?: unknown; role?: unknown };
    if (typeof username !== 'string' || !/^[a-z][a-z0-9-]{0,62}$/.test(username)) {
      throw new Error(`kong/consumers.yml: consumer ${i + 1} needs a username like ci-bot`);
    }
    if (!isRole(role)) {
      throw new Error(`kong/consumers.yml: ${username} needs a role: ${ROLES.join(', ')}`);
    }
    const variable = keyVariable(username);
    if (seen.has(variable)) throw new Error(`kong/consumers.yml: two consumers use ${variable}`);
    seen.add(variable);
    return { username, role };
  });
}

const placeholder = (name: string) => `\${${name}}`;
const optionalPlaceholder = (name: string) => `\${${name}:-}`;
const bearerSecret = `Authorization:Bearer ${placeholder(PLACEHOLDER.gatewaySecret)}`;

/** Kong's declarative configuration as an object: deterministic for a given input. */
export function buildKongConfig(doc: OpenApiDocument, consumers: ConsumerSpec[]): Json {
  const ops = contractOperations(doc);
  const timeoutMs = (longestWaitS(doc) + TIMEOUT_MARGIN_S) * 1000;
  const methods = [...new Set(ops.map((o) => o.method)), 'OPTIONS'];
  const route = (
    name: string,
    p: string,
    routeMethods: string[],
    plugins: Json[],
    tags: string[],
  ) => ({
    name,
    paths: [pathRegex(p)],
    methods: routeMethods,
    regex_priority: regexPriority(p),
    strip_path: false,
    preserve_host: false,
    protocols: ['http', 'https'],
    tags: ['routeplane', ...tags],
    plugins,
  });
  const operationRoutes = ops.map((op) =>
    op.role === null
      ? route(
          op.operationId,
          op.path,
          [op.method],
          [
            // Public operations need no secret; strip what a client could use to pose as one.
            {
              name: 'request-transformer',
              config: { remove: { headers: ['Authorization', ...CONSUMER_HEADERS] } },
            },
          ],
          ['public'],
        )
      : route(
          op.operationId,
          op.path,
          [op.method],
          [
            {
              name: 'key-auth',
              config: {
                key_names: ['apikey'],
                key_in_header: true,
                key_in_query: true,
                key_in_body: false,
                hide_credentials: true,
                run_on_preflight: false,
              },
            },
            { name: 'acl', config: { allow: groupsFor(op.role), hide_groups_header: false } },
            {
              // replace covers a client's own Authorization header, add its absence.
              name: 'request-transformer',
              config: { replace: { headers: [bearerSecret] }, add: { headers: [bearerSecret] } },
            },
          ],
          [`role-${op.role}`],
        ),
  );
  // One per distinct regex: `/routes/` and `/routes` are the same path to Kong.
  const preflightPaths = [...new Map(ops.map((o) => [pathRegex(o.path), o.path])).values()];
  const preflightRoutes = preflightPaths.map((p) =>
    route(
      `preflight-${slug(p)}`,
      p,
      ['OPTIONS'],
      [
        // The cors plugin answers real preflights before this runs; any other OPTIONS stops here.
        {
          name: 'request-termination',
          config: { status_code: 405, message: 'OPTIONS is answered only as a CORS preflight' },
        },
      ],
      ['preflight'],
    ),
  );
  return {
    _format_version: '3.0',
    services: [
      {
        name: 'routeplane',
        url: placeholder(PLACEHOLDER.upstreamUrl),
        // A retried POST would start a second run or apply twice.
        retries: 0,
        connect_timeout: 5000,
        read_timeout: timeoutMs,
        write_timeout: timeoutMs,
        tags: ['routeplane'],
        plugins: [
          {
            name: 'cors',
            config: {
              origins: [placeholder(PLACEHOLDER.uiOrigin)],
              methods,
              headers: ['Accept', 'Content-Type', 'apikey', 'X-Request-Id'],
              exposed_headers: [
                'Location',
                'X-Request-Id',
                'RateLimit-Limit',
                'RateLimit-Remaining',
                'RateLimit-Reset',
                'Retry-After',
              ],
              credentials: false,
              max_age: 600,
              preflight_continue: false,
            },
          },
          {
            name: 'rate-limiting',
            config: {
              minute: RATE_LIMIT_PER_MINUTE,
              limit_by: 'consumer',
              policy: 'local',
              fault_tolerant: true,
            },
          },
          {
            name: 'request-size-limiting',
            config: { allowed_payload_size: MAX_BODY_MB, size_unit: 'megabytes' },
          },
        ],
        routes: [...operationRoutes, ...preflightRoutes],
      },
    ],
    consumers: consumers.map((c) => ({
      username: c.username,
      tags: ['routeplane'],
      keyauth_credentials: [
        { key: placeholder(keyVariable(c.username)) },
        { key: optionalPlaceholder(`${keyVariable(c.username)}_NEXT`) },
      ],
      acls: [{ group: c.role }],
    })),
  };
}

const HEADER = `# GENERATED by \`npm run kong:generate\` from openapi.yaml and kong/consumers.yml: do not edit.
# Kong DB-less configuration with placeholders (\${NAME}; \${NAME:-} is optional) where secrets
# go; scripts/kong-render.mjs fills them from the environment at deploy time.
`;

/** The text of kong/kong.yml for the given contract and consumers, formatted as committed. */
export async function generateKongYaml(
  openapiText: string,
  consumersText: string,
): Promise<string> {
  const config = buildKongConfig(
    load(openapiText) as OpenApiDocument,
    parseConsumers(consumersText),
  );
  const body = dump(config, {
    noRefs: true,
    lineWidth: -1,
    // Lists of plain values on one line (`methods: [GET]`) keep a route readable at a glance.
    transform: (docs) =>
      visit(docs, (node) => {
        if (node.kind === 'sequence' && node.items.every((i) => i.kind === 'scalar')) {
          node.style = COLLECTION_STYLE.FLOW;
        }
      }),
  });
  const options = (await prettier.resolveConfig(KONG_YML)) ?? {};
  return prettier.format(HEADER + body, { ...options, parser: 'yaml' });
}

export async function generateFromRepo(): Promise<string> {
  return generateKongYaml(readFileSync(OPENAPI_YAML, 'utf8'), readFileSync(CONSUMERS_YML, 'utf8'));
}

async function main(): Promise<void> {
  const text = await generateFromRepo();
  const current = (() => {
    try {
      return readFileSync(KONG_YML, 'utf8');
    } catch {
      return null;
    }
  })();
  if (process.argv.includes('--check')) {
    if (current !== text) {
      process.stderr.write('kong/kong.yml is stale: run `npm run kong:generate` and commit it\n');
      process.exit(1);
    }
    return;
  }
  if (current !== text) writeFileSync(KONG_YML, text);
  process.stdout.write(`kong/kong.yml ${current === text ? 'unchanged' : 'written'}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  await main();
}
