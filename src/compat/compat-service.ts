import type { Actor } from '../auth/roles.ts';
import type { HostsService } from '../hosts/hosts-service.ts';
import { hasMainRouteTo, kernelTableId, type KernelRoute } from '../hosts/host-state.ts';
import { ApplyFailedError, ConflictError, NotFoundError } from '../http/errors.ts';
import type { RoutesService } from '../routes/routes-service.ts';
import { MAIN_TABLE } from '../routes/kernel-route.ts';
import { checkSchedule } from '../routes/route-input.ts';
import type { Route } from '../routes/types.ts';
import {
  CompatValidationError,
  compatDestination,
  compatDevice,
  compatGateway,
  compatTime,
  type CompatBody,
} from './compat-input.ts';

/** What a route-manager write answers: its message, and 200 or 201. */
export interface CompatReply {
  status: number;
  message: string;
}

export interface CompatState {
  routes: Route[];
  systemRoutes: KernelRoute[];
}

/**
 * route-manager's operations for one host, on top of routeplane's routes service: the same
 * rows, lifecycle, scheduler and reconciler as /v1/routes. Only route-manager's rules live
 * here: a route is found by its destination alone, `via` and `dev` replace each other, and a
 * destination the kernel already has (ours or not) is "already exists".
 */
export class CompatService {
  constructor(
    readonly host: string,
    private readonly routes: RoutesService,
    private readonly hosts: HostsService,
    private readonly waitMs: number,
  ) {}

  private async byDestination(to: string): Promise<Route | null> {
    const { items } = await this.routes.list({
      host: this.host,
      destination: to,
      limit: 1,
      offset: 0,
    });
    return items[0] ?? null;
  }

  private async require(body: CompatBody, notFound: (to: string) => string): Promise<Route> {
    const { to } = compatDestination(body);
    const route = await this.byDestination(to);
    if (!route) throw new NotFoundError(notFound(to));
    return route;
  }

  /** Waits for the kernel like /v1/routes does; a failed apply is reported, not hidden. */
  private async settle(route: Route): Promise<Route> {
    const { value } = await this.routes.waitForKernel([route], this.waitMs);
    const settled = value[0] ?? route;
    if (settled.sync.state === 'failed') {
      throw new ApplyFailedError(settled.sync.error ?? 'the apply run failed', {
        host: settled.host,
        route_id: settled.id,
        run_id: settled.sync.lastRunId,
      });
    }
    return settled;
  }

  /**
   * route-manager knows one gateway per route: a route with candidate gateways is changed
   * through /v1/routes only (compat shows its first gateway in use).
   */
  private refuseCandidates(route: Route): void {
    if (route.failover) {
      throw new CompatValidationError(
        `the route to ${route.to} has candidate gateways (${route.failover.candidates.join(', ')}); change it with /v1/routes/${route.id}`,
      );
    }
  }

  /** A device the host does not have is a 422, on PUT and PATCH alike. */
  private checkDevice(dev: string | null, links: { ifname: string }[]): void {
    if (dev && !links.some((l) => l.ifname === dev)) {
      throw new CompatValidationError(`dev: ${dev} is not an interface of ${this.host}`);
    }
  }

  async state(actor: Actor): Promise<CompatState> {
    const [{ items }, view] = await Promise.all([
      this.routes.list({ host: this.host, limit: 10_000, offset: 0 }),
      this.hosts.get(this.host, true, actor),
    ]);
    return {
      routes: items,
      systemRoutes: view.state.routes.filter((r) => kernelTableId(r) === MAIN_TABLE),
    };
  }

  async deleted(): Promise<Route[]> {
    const { items } = await this.routes.history({ host: this.host, limit: 10_000, offset: 0 });
    return items;
  }

  async put(body: CompatBody, actor: Actor): Promise<CompatReply> {
    const { to, family } = compatDestination(body);
    const via = compatGateway(body, family);
    const dev = compatDevice(body);
    if (!via && !dev) throw new CompatValidationError('at least one of via or dev is required');
    const createAt = compatTime(body, 'create_at');
    const deleteAt = compatTime(body, 'delete_at');
    checkSchedule({ createAt, deleteAt }, new Date(), '/body');
    const exists = { status: 200, message: `A route to ${to} already exists in the system` };
    const found = await this.byDestination(to);
    if (found) this.refuseCandidates(found);
    if (found) return exists;
    const { state } = await this.hosts.get(this.host, true, actor);
    this.checkDevice(dev, state.links);
    // Whichever way the host spelled it (`default`, a name for the table): one normalisation.
    if (hasMainRouteTo(state.routes, to)) return exists;
    const [item] = await this.routes.create(
      [
        {
          input: {
            host: this.host,
            to,
            via,
            dev,
            create_at: createAt?.toISOString() ?? null,
            delete_at: deleteAt?.toISOString() ?? null,
          },
          base: '/body',
        },
      ],
      actor,
      false,
    );
    if (item!.outcome === 'existing') return exists;
    await this.settle(item!.route);
    return { status: 201, message: 'Route succesfully added or scheduled' };
  }

  async patch(body: CompatBody, actor: Actor): Promise<CompatReply> {
    const route = await this.require(body, (to) => `Route ${to} not found in the database.`);
    this.refuseCandidates(route);
    const via = compatGateway(body, route.family);
    const dev = compatDevice(body);
    const createAt = compatTime(body, 'create_at');
    const deleteAt = compatTime(body, 'delete_at');
    // Otherwise a mistyped device would take a working route out of the kernel.
    if (dev) this.checkDevice(dev, (await this.hosts.get(this.host, true, actor)).state.links);
    // route-manager: a new gateway replaces the device and a new device replaces the gateway.
    const changed = await this.routes.patch(
      route.id,
      {
        ...(via ? { via, dev: dev ?? null } : {}),
        ...(dev && !via ? { dev, via: null } : {}),
        ...(createAt ? { create_at: createAt.toISOString() } : {}),
        ...(deleteAt ? { delete_at: deleteAt.toISOString() } : {}),
      },
      actor,
    );
    await this.settle(changed);
    return { status: 200, message: `Route ${route.to} successfully updated` };
  }

  async delete(body: CompatBody, actor: Actor): Promise<CompatReply> {
    const route = await this.require(body, (to) => `Route to ${to} not found in the database.`);
    await this.settle(await this.routes.delete(route.id, actor));
    return { status: 200, message: 'Route succesfully deleted' };
  }

  async pause(body: CompatBody, actor: Actor): Promise<CompatReply> {
    const route = await this.require(body, (to) => `Route ${to} not found in the database.`);
    await this.settle(
      await this.lifecycle(() => this.routes.pause(route.id, actor), route, 'active'),
    );
    return { status: 200, message: `Route ${route.to} successfully paused` };
  }

  async activate(body: CompatBody, actor: Actor): Promise<CompatReply> {
    const route = await this.require(body, (to) => `Route ${to} not found in the database.`);
    await this.settle(
      await this.lifecycle(() => this.routes.resume(route.id, actor), route, 'paused'),
    );
    return { status: 200, message: `Route ${route.to} successfully re-activated` };
  }

  private async lifecycle(fn: () => Promise<Route>, route: Route, need: string): Promise<Route> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ConflictError) {
        throw new ConflictError(`Route ${route.to} is ${route.status}, not ${need}`);
      }
      throw err;
    }
  }
}
