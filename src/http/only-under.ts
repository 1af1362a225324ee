import type { RequestHandler, Router } from 'express';

/**
 * Passes a request into `router` only if its path could match one of `prefixes` (the router's
 * own matching is case-insensitive): every other request, a hot read included, skips walking
 * the router's layers.
 */
export function onlyUnder(prefixes: string[], router: Router): RequestHandler {
  return (req, res, next) => {
    const path = req.path.toLowerCase();
    if (prefixes.some((p) => path.startsWith(p))) return router(req, res, next);
    next();
  };
}
