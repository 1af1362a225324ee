import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from '../logger.ts';
import { requestContext } from '../logger.ts';

const SAFE_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Told of every request once its response has been sent (metrics). */
export type RequestObserver = (req: Request, res: Response, seconds: number) => void;

/** Assigns a request id (or keeps a sane incoming X-Request-Id) and logs one line per request. */
export function requestContextMiddleware(
  logger: Logger,
  observe?: RequestObserver,
): RequestHandler {
  return (req, res, next) => {
    const incoming = req.headers['x-request-id'];
    const requestId =
      typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader('X-Request-Id', requestId);
    const started = process.hrtime.bigint();
    res.once('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      // The id is written out here rather than by re-entering the request's context: the
      // log line is the same, without a second async context per request.
      if (logger.isLevelEnabled('info')) {
        logger.info(
          {
            event: 'http.request',
            request_id: requestId,
            method: req.method,
            path: req.path,
            status: res.statusCode,
            actor: req.actor?.name,
            duration_ms: seconds * 1e3,
          },
          'request',
        );
      }
      observe?.(req, res, seconds);
    });
    requestContext.run({ requestId }, next);
  };
}
