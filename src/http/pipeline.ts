import type { RequestHandler } from 'express';

/**
 * Middleware run in order as one Express layer. Express's router does a path match, a URL
 * parse and parameter bookkeeping for every layer it passes; on a cached read those layers
 * cost more than the handler. Behaves like app.use of each in turn for middleware mounted on
 * every path: an error (passed, thrown or a rejected promise) skips to the error handlers.
 */
export function pipeline(stages: RequestHandler[]): RequestHandler {
  return (req, res, next) => {
    let i = 0;
    const step = (err?: unknown): void => {
      if (err !== undefined && err !== null) return next(err);
      const stage = stages[i++];
      if (!stage) return next();
      try {
        const out = stage(req, res, step) as unknown;
        if (out instanceof Promise) out.catch(next);
      } catch (e) {
        next(e);
      }
    };
    step();
  };
}
