import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Logger } from '../logger.ts';
import { requestContext } from '../logger.ts';

const SAFE_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Assigns a request id (or keeps a sane incoming X-Request-Id) and logs one line per request. */
export function requestContextMiddleware(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const incoming = req.get('x-request-id');
    const requestId = incoming && SAFE_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader('X-Request-Id', requestId);
    const started = process.hrtime.bigint();
    requestContext.run({ requestId }, () => {
      res.on('finish', () => {
        requestContext.run({ requestId }, () => {
          logger.info(
            {
              event: 'http.request',
              method: req.method,
              path: req.path,
              status: res.statusCode,
              actor: req.actor?.name,
              duration_ms: Number(process.hrtime.bigint() - started) / 1e6,
            },
            'request',
          );
        });
      });
      next();
    });
  };
}
