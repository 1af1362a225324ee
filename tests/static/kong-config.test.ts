import { readFileSync } from 'node:fs';
import path from 'node:path';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { ROLES, roleSatisfies } from '../../src/auth/roles.ts';
import { loadConfig } from '../../src/config.ts';
import { generateFromRepo, KONG_YML } from '../../scripts/kong-generate.ts';
import { REPO, sampleOperations } from './contract.ts';

type Plugin = { name: string; config: Record<string, unknown> };
type Route = {
  name: string;
  paths: string[];
  methods: string[];
  regex_priority: number;
  strip_path: boolean;
  plugins?: Plugin[];
};
type KongConfig = {
  _format_version: string;
  services: {
    url: string;
    retries: number;
    read_timeout: number;
    write_timeout: number;
    plugins?: Plugin[];
    routes: Route[];
  }[];
  consumers: { username: string; acls: { group: string }[] }[];
};

const committed = readFileSync(KONG_YML, 'utf8');
const kong = load(committed) as KongConfig;
const service = kong.services[0]!;
const plugin = (route: Route, name: string) => route.plugins?.find((p) => p.name === name);
/** The plugin Kong runs on a route: the route's own instance wins over the service's. */
const effective = (route: Route, name: string) =>
  plugin(route, name) ?? service.plugins?.find((p) => p.name === name);

/** BODY_LIMIT (`100kb`, `1mb`) in megabytes. */
function megabytes(limit: string): number {
  const [, n, unit] = /^(\d+)(b|kb|mb)$/i.exec(limit) ?? [];
  const per = { b: 1024 ** 2, kb: 1024, mb: 1 }[unit?.toLowerCase() as 'b' | 'kb' | 'mb'];
  return Number(n) / per;
}

/** The route Kong picks for a request: among matching regex routes, the highest priority. */
function routeFor(method: string, urlPath: string): Route[] {
  const matching = service.routes.filter(
    (r) =>
      r.methods.includes(method) &&
      r.paths.some((p) => new RegExp('^' + p.replace(/^~/, '')).test(urlPath)),
  );
  const top = Math.max(...matching.map((r) => r.regex_priority));
  return matching.filter((r) => r.regex_priority === top);
}

/** Who gets past key-auth and acl on a route: `anonymous` stands for a request without a key. */
function admittedGroups(route: Route): string[] {
  const acl = plugin(route, 'acl');
  if (!plugin(route, 'key-auth')) return ['anonymous', ...ROLES];
  return ROLES.filter((g) => (acl?.config.allow as string[] | undefined)?.includes(g));
}

describe('kong/kong.yml, given openapi.yaml and kong/consumers.yml', () => {
  it('when regenerated, then it equals the committed file byte for byte', async () => {
    expect(
      await generateFromRepo(),
      'kong/kong.yml is out of date with openapi.yaml or kong/consumers.yml: run `npm run kong:generate` and commit kong/kong.yml',
    ).toBe(committed);
  });

  const ops = sampleOperations();

  it.each(ops.map((op) => [`${op.method} ${op.template}`, op] as const))(
    'when %s is called through Kong, then exactly the groups its role allows get through',
    (_, op) => {
      const routes = routeFor(op.method, op.path);
      expect(
        routes.map((r) => r.name),
        'exactly one route, the operation’s own, wins',
      ).toEqual([op.operationId]);
      // Express ignores a trailing slash; so does the route.
      const twin = op.path.endsWith('/') ? op.path.slice(0, -1) : op.path + '/';
      expect(routeFor(op.method, twin).map((r) => r.name)).toEqual([op.operationId]);
      const route = routes[0]!;
      expect(route.strip_path).toBe(false);
      const expected =
        op.role === null
          ? ['anonymous', ...ROLES]
          : ROLES.filter((g) => roleSatisfies(g, op.role!));
      expect(admittedGroups(route)).toEqual(expected);
      if (op.role !== null) {
        expect(plugin(route, 'key-auth')?.config).toMatchObject({
          hide_credentials: true,
          key_in_header: true,
          key_in_query: true,
        });
        // The API reads the groups header, and trusts it only next to the gateway secret.
        expect(plugin(route, 'acl')?.config.hide_groups_header).toBe(false);
        const transformer = plugin(route, 'request-transformer')?.config as
          { replace: { headers: string[] }; add: { headers: string[] } } | undefined;
        expect(transformer?.replace.headers).toEqual(['Authorization:Bearer ${GATEWAY_SECRET}']);
        expect(transformer?.add.headers).toEqual(['Authorization:Bearer ${GATEWAY_SECRET}']);
      }
    },
  );

  it('when a WebSocket upgrade comes to /v1/ws, then Kong proxies it to the API after key-auth (header or ?apikey= for browsers) and the viewer ACL', () => {
    const [route] = routeFor('GET', '/v1/ws');
    expect(route?.name).toBe('openLiveSocket');
    // Kong proxies upgrades on http(s) routes; a ws-only protocol list would need Kong Enterprise.
    expect((route as Route & { protocols: string[] }).protocols).toEqual(['http', 'https']);
    expect(plugin(route!, 'key-auth')?.config).toMatchObject({ key_in_query: true });
    expect(admittedGroups(route!)).toEqual(['viewer', 'operator', 'admin']);
    expect(routeFor('POST', '/v1/ws/tickets').map((r) => r.name)).toEqual([
      'createLiveSocketTicket',
    ]);
  });

  it('when listing its routes, then each is an operation of the contract or a CORS preflight', () => {
    const names = new Set(ops.map((o) => o.operationId));
    const templates = new Set(ops.map((o) => o.template.replace(/\/+$/, '')));
    for (const route of service.routes) {
      if (names.has(route.name)) continue;
      expect(route.methods, route.name).toEqual(['OPTIONS']);
      expect(plugin(route, 'request-termination'), route.name).toBeDefined();
    }
    const preflights = service.routes.filter((r) => r.methods.includes('OPTIONS'));
    expect(preflights).toHaveLength(templates.size);
    expect(new Set(service.routes.map((r) => r.name)).size).toBe(service.routes.length);
  });

  it('when a run is long, then Kong neither retries a POST nor cuts the longest ?wait= short', () => {
    expect(service.retries).toBe(0);
    expect(service.read_timeout).toBeGreaterThanOrEqual(600_000);
    expect(service.write_timeout).toBeGreaterThanOrEqual(600_000);
    expect(kong._format_version).toBe('3.0');
  });

  it('when a browser calls from another origin, then CORS allows only the UI_ORIGIN placeholder', () => {
    for (const route of service.routes) {
      expect(effective(route, 'cors')?.config.origins, route.name).toEqual(['${UI_ORIGIN}']);
    }
  });

  it('when a consumer calls often, then its requests are rate-limited per consumer', () => {
    for (const route of service.routes) {
      const limit = effective(route, 'rate-limiting')?.config;
      expect(limit?.limit_by, route.name).toBe('consumer');
      expect(limit?.minute, route.name).toBeGreaterThan(0);
    }
  });

  it('when a body is larger than the API accepts, then Kong limits request sizes on every route', () => {
    const apiLimitMb = megabytes(loadConfig({}).bodyLimit);
    for (const route of service.routes) {
      const size = effective(route, 'request-size-limiting')?.config;
      expect(size?.size_unit, route.name).toBe('megabytes');
      // Above the API's own limit, so the API answers an oversize body with its problem+json.
      expect(size?.allowed_payload_size, route.name).toBeGreaterThan(apiLimitMb);
    }
  });

  it('when it names consumers, then each is in one role group and has only a placeholder key', () => {
    for (const consumer of kong.consumers) {
      expect(consumer.acls.map((a) => a.group)).toHaveLength(1);
      expect(ROLES).toContain(consumer.acls[0]!.group);
    }
    expect(committed).not.toMatch(/key: (?!\$\{)/);
    expect(path.relative(REPO, KONG_YML)).toBe('kong/kong.yml');
  });
});
