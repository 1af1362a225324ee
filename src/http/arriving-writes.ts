import type { Request, RequestHandler } from 'express';
import { requestContext } from '../logger.ts';

/**
 * Announces a write the moment its request arrives, before its body is read and validated:
 * the reconciler waits for writes on their way before it claims (group commit), and a bulk
 * of large bodies spends most of its time being parsed, not in a transaction. The write ends
 * when the request starts waiting for the kernel (the reconciler calls endArrivingWrite in its
 * async context) or when its response is over, whichever comes first.
 */
export function announceArrivingWrites(
  changesDesiredState: (req: Request) => boolean,
  expectWrite: () => () => void,
): RequestHandler {
  return (req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD' && changesDesiredState(req)) {
      const end = expectWrite();
      const ctx = requestContext.getStore();
      if (ctx) ctx.endWrite = end;
      res.once('close', end);
    }
    next();
  };
}

/** Ends the announced write of the request this runs for, if any. */
export function endArrivingWrite(): void {
  const ctx = requestContext.getStore();
  ctx?.endWrite?.();
  if (ctx) ctx.endWrite = undefined;
}
