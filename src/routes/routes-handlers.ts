import type { Request, Response } from 'express';
import { ApplyFailedError } from '../http/errors.ts';
import { answerOne, presentCarried, sendPending, syncCounts } from '../http/kernel-answer.ts';
import type { Schemas } from '../http/api.ts';
import type { Operations } from '../http/operations.ts';
import { actorOf } from '../http/security.ts';
import { parsePrefix, type RouteInput } from './route-input.ts';
import type { RouteFilter } from './routes-store.ts';
import { presentRoute } from './routes-presenter.ts';
import type { CreateItem, RoutePatch, RoutesService } from './routes-service.ts';
import type { Route, RouteStatus, SyncState } from './types.ts';

function filterOf(req: Request): RouteFilter {
  const q = req.query as Record<string, string | undefined>;
  return {
    host: q.host,
    status: q.status as RouteStatus | undefined,
    sync: q.sync as SyncState | undefined,
    // Parsed here so a bad value is a 400 naming the parameter, never a database cast error.
    contains: q.contains === undefined ? undefined : parsePrefix(q.contains, '/query/contains').to,
    within: q.within === undefined ? undefined : parsePrefix(q.within, '/query/within').to,
    limit: Number(q.limit ?? 100),
    offset: Number(q.offset ?? 0),
  };
}

const ROUTE_ANSWERS = {
  present: presentRoute,
  failure: (route: Route): ApplyFailedError =>
    new ApplyFailedError(route.sync.error ?? 'the apply run failed', {
      host: route.host,
      route_id: route.id,
      run_id: route.sync.lastRunId,
    }),
};

type RouteOperations = Pick<
  Operations,
  | 'listRoutes'
  | 'createRoutes'
  | 'upsertRoutes'
  | 'listRouteHistory'
  | 'getRoute'
  | 'updateRoute'
  | 'deleteRoute'
  | 'pauseRoute'
  | 'resumeRoute'
  | 'listRouteEvents'
>;

export function routesHandlers(routes: RoutesService, defaultWaitMs: number): RouteOperations {
  const waitMs = (req: Request) =>
    req.query.wait === undefined ? defaultWaitMs : Number(req.query.wait) * 1000;

  /** Answers a write of one route once its run has ended, or 202 while it is still going. */
  async function respondOne(
    req: Request,
    res: Response,
    route: Route,
    okStatus: number,
    warnings: string[] = [],
  ) {
    const applied = await routes.waitForKernel([route], waitMs(req));
    const answers = warnings.length
      ? { ...ROUTE_ANSWERS, present: (r: Route) => ({ ...presentRoute(r), warnings }) }
      : ROUTE_ANSWERS;
    answerOne(res, answers, applied.value[0]!, applied.settlement, okStatus);
  }

  async function create(req: Request, res: Response, upsert: boolean) {
    const body = req.body as RouteInput | RouteInput[];
    const batch = Array.isArray(body);
    const inputs = (batch ? body : [body]).map((input, i) => ({
      input,
      base: batch ? `/body/${i}` : '/body',
    }));
    const items: CreateItem[] = await routes.create(inputs, actorOf(req), upsert);
    const anyCreated = items.some((i) => i.outcome === 'created');
    const warnings = await routes.warningsOf(items);
    if (!batch && items.length === 1) {
      const { route, outcome } = items[0]!;
      return respondOne(req, res, route, outcome === 'created' ? 201 : 200, warnings);
    }
    const applied = await routes.waitForKernel(
      items.map((i) => i.route),
      waitMs(req),
    );
    const byId = new Map(applied.value.map((route) => [route.id, route]));
    const current = items.map((i) => ({ outcome: i.outcome, route: byId.get(i.route.id)! }));
    const counts = syncCounts(current.map((c) => c.route));
    if (!applied.settlement.settled) sendPending(res, applied.settlement);
    else if (counts.failed === current.length) {
      const first = current[0]!.route;
      throw new ApplyFailedError(`every item failed; first: ${first.sync.error}`, {
        host: first.host,
        route_id: first.id,
        run_id: first.sync.lastRunId,
      });
    } else res.status(upsert && !anyCreated ? 200 : 201);
    res.json({
      items: current.map((c) => ({
        outcome: c.outcome,
        route: presentCarried(ROUTE_ANSWERS, c.route, applied.settlement),
      })),
      counts,
      ...(warnings.length ? { warnings } : {}),
    });
  }

  return {
    // GET /v1/routes
    listRoutes: async (req, res) => {
      const f = filterOf(req);
      const { items, total } = await routes.list(f);
      res.json({ items: items.map(presentRoute), total, limit: f.limit, offset: f.offset });
    },

    // POST /v1/routes
    createRoutes: (req, res) => create(req, res, false),

    // PUT /v1/routes
    upsertRoutes: (req, res) => create(req, res, true),

    // GET /v1/routes/history
    listRouteHistory: async (req, res) => {
      const f = filterOf(req);
      const { items, total } = await routes.history(f);
      res.json({ items: items.map(presentRoute), total, limit: f.limit, offset: f.offset });
    },

    // GET /v1/routes/{id}
    getRoute: async (req, res) => {
      res.json(presentRoute(await routes.get(req.params.id!)));
    },

    // PATCH /v1/routes/{id}
    updateRoute: async (req, res) => {
      const route = await routes.patch(req.params.id!, req.body as RoutePatch, actorOf(req));
      await respondOne(req, res, route, 200);
    },

    // DELETE /v1/routes/{id}
    deleteRoute: async (req, res) => {
      await respondOne(req, res, await routes.delete(req.params.id!, actorOf(req)), 200);
    },

    // POST /v1/routes/{id}/pause
    pauseRoute: async (req, res) => {
      await respondOne(req, res, await routes.pause(req.params.id!, actorOf(req)), 200);
    },

    // POST /v1/routes/{id}/resume
    resumeRoute: async (req, res) => {
      await respondOne(req, res, await routes.resume(req.params.id!, actorOf(req)), 200);
    },

    // GET /v1/routes/{id}/events
    listRouteEvents: async (req, res) => {
      const events = await routes.events(req.params.id!);
      res.json({
        items: events.map((e) => ({
          id: e.id,
          at: e.at.toISOString(),
          actor: e.actor,
          action: e.action as Schemas['RouteEvent']['action'],
          from: e.from,
          to: e.to,
          detail: e.detail,
        })),
      });
    },
  };
}
