import type { Request, RequestHandler, Response } from 'express';
import type { operations } from './api-types.ts';

/** Every operationId openapi.yaml declares. */
export type OperationId = keyof operations;

/** The validator decodes path parameters as plain strings (no wildcard arrays). */
export type OperationRequest = Request<Record<string, string>>;

/** One operation's handler; what it throws or rejects with goes to the error handlers. */
export type OperationHandler = (req: OperationRequest, res: Response) => unknown;

/** A handler for every operation of the contract: a missing one is a compile error. */
export type Operations = Record<OperationId, OperationHandler>;

interface MatchedRequest {
  openapi?: { schema?: { operationId?: string }; pathParams?: Record<string, string> };
}

/**
 * Runs the handler of the operation the validator matched. The contract already says which
 * operation a request is (the validator found it, with its path parameters), so handlers are
 * looked up by operationId instead of matched again, path by path, through a router per
 * module. A request the contract does not know falls through to the not-found handler.
 */
export function operationDispatcher(handlers: Operations): RequestHandler {
  const table = new Map<string, OperationHandler>(Object.entries(handlers));
  return (req, res, next) => {
    const openapi = (req as MatchedRequest).openapi;
    const handler = openapi?.schema?.operationId && table.get(openapi.schema.operationId);
    if (!handler) return next();
    // Express resets req.params on every layer; the validator decoded them once.
    req.params = openapi.pathParams ?? {};
    try {
      const out = handler(req as OperationRequest, res) as Promise<unknown> | undefined;
      if (out && typeof out.then === 'function') out.then(undefined, next);
    } catch (err) {
      next(err);
    }
  };
}
