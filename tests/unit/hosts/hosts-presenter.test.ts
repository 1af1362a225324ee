import { describe, expect, it } from 'vitest';
import { parseRoutes, type HostState } from '../../../src/hosts/host-state.ts';
import { presentState } from '../../../src/hosts/hosts-presenter.ts';

const state = (raw: unknown[]): HostState => ({
  collectedAt: new Date('2026-01-01T00:00:00Z'),
  runId: null,
  links: [],
  addresses: [],
  routes: parseRoutes(raw),
});

describe('presentState', () => {
  it('when a route is multipath, then it carries its nexthops', () => {
    const out = presentState(
      state([
        {
          dst: '203.0.113.0/24',
          protocol: '147',
          flags: [],
          nexthops: [
            { gateway: '198.51.100.1', dev: 'eth0', weight: 1, flags: [] },
            { gateway: '198.51.100.2', dev: 'eth0', weight: 2, flags: [] },
          ],
        },
      ]),
    );
    expect(out.routes[0]).toMatchObject({
      dst: '203.0.113.0/24',
      gateway: null,
      dev: null,
      nexthops: [
        { gateway: '198.51.100.1', dev: 'eth0', weight: 1 },
        { gateway: '198.51.100.2', dev: 'eth0', weight: 2 },
      ],
    });
  });

  it('when a route has a single path, or came from a snapshot older than multipath, then it has no nexthops field', () => {
    const single = state([{ dst: '203.0.113.0/24', gateway: '198.51.100.1', dev: 'eth0' }]);
    const old = { ...single, routes: single.routes.map(({ nexthops: _, ...r }) => r) };
    for (const s of [single, old]) {
      const [route] = presentState(s).routes;
      expect(route).toMatchObject({ gateway: '198.51.100.1', dev: 'eth0' });
      expect(route).not.toHaveProperty('nexthops');
    }
  });
});
