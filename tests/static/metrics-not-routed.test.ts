import { readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { KONG_YML } from '../../scripts/kong-generate.ts';

type Route = { name: string; paths?: string[] };
type KongConfig = { services: { routes: Route[] }[] };

/** Whether Kong would send `path` to this route path (`~` marks a regex, else a prefix). */
function kongMatches(routePath: string, path: string): boolean {
  return routePath.startsWith('~')
    ? new RegExp(routePath.slice(1)).test(path)
    : path.startsWith(routePath);
}

describe('kong/kong.yml and /metrics', () => {
  it('when kong.yml is read, then no route of it sends /metrics to the API', () => {
    const kong = load(readFileSync(KONG_YML, 'utf8')) as KongConfig;
    const routes = kong.services.flatMap((s) => s.routes);
    expect(routes.length).toBeGreaterThan(0);
    for (const route of routes) {
      for (const p of route.paths ?? []) {
        for (const probe of ['/metrics', '/metrics/', '/v1/metrics']) {
          expect(kongMatches(p, probe), `${route.name} ${p} routes ${probe}`).toBe(false);
        }
      }
    }
  });
});
