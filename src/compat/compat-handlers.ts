import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
import { AppError, NotFoundError } from '../http/errors.ts';
import type { Operations } from '../http/operations.ts';
import { toAppError } from '../http/problem.ts';
import { actorOf } from '../http/security.ts';
import type { Logger } from '../logger.ts';
import type { CompatBody } from './compat-input.ts';
import { presentDatabaseRoute, presentDeletedRoute, routeLine } from './compat-presenter.ts';
import type { CompatReply, CompatService } from './compat-service.ts';

/** The paths route-manager clients call (their error answers are FastAPI-shaped). */
export const COMPAT_PATHS = ['/routes', '/routes/pause', '/routes/activate', '/routes/deleted'];

// The contract declares each path once, as route-manager did (`/routes/`, `/routes/pause`);
// clients call them with and without the trailing slash, and both must answer directly
// (route-manager's redirect broke PUT/PATCH/DELETE clients).
const CANONICAL: Record<string, string> = {
  '/routes': '/routes/',
  '/routes/pause/': '/routes/pause',
  '/routes/activate/': '/routes/activate',
  '/routes/deleted/': '/routes/deleted',
};

/** Rewrites a compat path to its declared form before validation and routing. */
export function compatPathAliases(): RequestHandler {
  return (req, _res, next) => {
    const q = req.url.indexOf('?');
    const path = q === -1 ? req.url : req.url.slice(0, q);
    const canonical = CANONICAL[path];
    if (canonical) {
      req.url = canonical + (q === -1 ? '' : req.url.slice(q));
      // The validator matches operations on originalUrl.
      req.originalUrl = req.url;
    }
    next();
  };
}

function bodyOf(req: Request): CompatBody {
  return (req.body ?? {}) as CompatBody;
}

/**
 * route-manager's endpoints for COMPAT_HOST. Requests pass the same OpenAPI validation and
 * role checks as /v1; only the answers differ: `{"message"}` on success and FastAPI's
 * `{"detail"}` (422 for invalid input) on failure, mapped by compatErrorHandler below.
 */
type CompatOperations = Pick<
  Operations,
  | 'compatListRoutes'
  | 'compatAddRoute'
  | 'compatUpdateRoute'
  | 'compatDeleteRoute'
  | 'compatPauseRoute'
  | 'compatActivateRoute'
  | 'compatListDeletedRoutes'
>;

export function compatHandlers(compat: CompatService | null): CompatOperations {
  const service = () => {
    if (!compat) {
      throw new NotFoundError('route-manager compatibility is off: set COMPAT_HOST to serve it');
    }
    return compat;
  };
  const reply = async (res: Response, p: Promise<CompatReply>) => {
    const { status, message } = await p;
    res.status(status).json({ message });
  };

  return {
    // GET /routes/
    compatListRoutes: async (req, res) => {
      const { routes, systemRoutes } = await service().state(actorOf(req));
      res.json({
        database_routes: routes.map(presentDatabaseRoute),
        system_routes: systemRoutes.map(routeLine),
      });
    },
    // PUT /routes/
    compatAddRoute: (req, res) => reply(res, service().put(bodyOf(req), actorOf(req))),
    // PATCH /routes/
    compatUpdateRoute: (req, res) => reply(res, service().patch(bodyOf(req), actorOf(req))),
    // DELETE /routes/
    compatDeleteRoute: (req, res) => reply(res, service().delete(bodyOf(req), actorOf(req))),
    // PATCH /routes/pause
    compatPauseRoute: (req, res) => reply(res, service().pause(bodyOf(req), actorOf(req))),
    // PATCH /routes/activate
    compatActivateRoute: (req, res) => reply(res, service().activate(bodyOf(req), actorOf(req))),
    // GET /routes/deleted
    compatListDeletedRoutes: async (_req, res) => {
      res.json({ deleted_routes: (await service().deleted()).map(presentDeletedRoute) });
    },
  };
}

/** Maps every error on the compat paths to FastAPI's shape, with its status conventions. */
export function compatErrorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) return next(err);
    const e: AppError = toAppError(err);
    let status = e.status;
    // Field paths as FastAPI names them: `to`, not `/body/to`.
    let detail = e.message.replace(/(^|; )\/body(\/|: )/g, '$1');
    // FastAPI answers every malformed or invalid request body with 422.
    if (status === 400 || status === 415) status = 422;
    if (status === 401) {
      detail = req.get('authorization') ? 'Invalid or expired token' : 'Not authenticated';
    }
    if (status >= 500) {
      logger.error({ event: 'compat.error', err, path: req.path }, 'compat request failed');
      if (status === 500) detail = 'Internal Server Error';
    }
    res.status(status);
    if (status === 401) res.set('WWW-Authenticate', 'Bearer');
    res.json({ detail });
  };
}
