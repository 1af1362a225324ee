import type { DesiredKind, HostInRun, RenderedHost } from '../reconciler/kind.ts';
import type { Run } from '../runs/types.ts';
import {
  moduleRoute,
  moduleRoutesPayload,
  ROUTES_MODULE,
  syncFromRun,
  type SettledRoute,
} from './route-results.ts';
import type { RoutesStore } from './routes-store.ts';

/** Routes as a kind of desired state: rendered for routeplane_routes, settled from its result. */
export class RoutesKind implements DesiredKind {
  readonly name = 'routes';
  readonly module = ROUTES_MODULE;

  constructor(
    private readonly store: RoutesStore,
    private readonly routeProto: number,
  ) {}

  /** One read: what each host should hold, and which rows the run settles, in one snapshot. */
  async render(hosts: string[]): Promise<Map<string, RenderedHost>> {
    const rows = await this.store.settleable(hosts);
    return new Map(
      hosts.map((h) => {
        const mine = rows.get(h) ?? [];
        const settles: SettledRoute[] = mine.map((r) => ({
          id: r.id,
          desired: r.status === 'active',
          state: r.sync.state,
        }));
        const routes = moduleRoutesPayload(
          mine.filter((r) => r.status === 'active').map(moduleRoute),
        );
        return [h, { args: { proto: this.routeProto, routes }, settles }];
      }),
    );
  }

  async settle(run: Run, hosts: HostInRun[], repairDrift: boolean) {
    const byHost = new Map(hosts.map((h) => [h.host, h]));
    const settled = new Map(
      hosts.map((h) => [h.host, (h.rendered?.settles as SettledRoute[] | undefined) ?? []]),
    );
    const problems = new Map<string, string | null>();
    for (const converging of [false, true]) {
      const mine = new Map([...settled].filter(([h]) => byHost.get(h)!.converging === converging));
      if (mine.size === 0) continue;
      const results = syncFromRun(run, mine, (h) => byHost.get(h)!.retryAt, {
        converging,
        repair: repairDrift,
      });
      await this.store.recordSync(results.flatMap((r) => r.updates));
      await this.store.recordDrift(
        results.flatMap((r) => r.drift.map((d) => ({ ...d, host: r.host }))),
        run.id,
        repairDrift,
      );
      for (const r of results) {
        problems.set(
          r.host,
          r.hostError ?? (r.updates.some((u) => u.state === 'failed') ? 'route errors' : null),
        );
      }
    }
    return problems;
  }

  nothing(): RenderedHost {
    return { args: { proto: this.routeProto, routes: moduleRoutesPayload([]) } };
  }

  hostsWithObjects(): Promise<string[]> {
    return this.store.hostsWithActiveRoutes();
  }
}
