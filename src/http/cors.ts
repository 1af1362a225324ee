import type { RequestHandler } from 'express';

const ALLOWED_HEADERS = 'Authorization, Content-Type, Accept, X-Request-Id';
const EXPOSED_HEADERS = 'Location, X-Request-Id, Retry-After';

/**
 * CORS for the origins in CORS_ORIGINS only (a deployer UI served elsewhere, without Kong):
 * their requests get `Access-Control-Allow-Origin` with their own origin, never `*`, and never
 * credentials (the API takes bearer tokens, not cookies); their preflights are answered here.
 * Any other origin gets no CORS header, so its page cannot read an answer.
 */
export function cors(origins: string[]): RequestHandler {
  const allowed = new Set(origins);
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (allowed.size === 0 || origin === undefined || !allowed.has(origin)) return next();
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.append('Vary', 'Origin');
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
      res.setHeader('Access-Control-Allow-Methods', 'GET, POST, PUT, PATCH, DELETE');
      res.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      res.setHeader('Access-Control-Max-Age', '600');
      res.status(204).end();
      return;
    }
    res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    next();
  };
}
