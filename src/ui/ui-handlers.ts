import path from 'node:path';
import express, { Router, type RequestHandler } from 'express';
import { onlyUnder } from '../http/only-under.ts';

const PUBLIC_DIR = path.join(import.meta.dirname, 'public');

/**
 * The dashboard: static files, no build step. It holds no data (it asks for a token and reads
 * everything from the API), so it is served without one; its CSP allows only this origin's
 * scripts, styles and connections (the WebSocket included).
 */
export function uiHandlers(): RequestHandler {
  // Strict: `/ui` and `/ui/` differ (the first redirects to the second, which is the page).
  const r = Router({ strict: true });
  r.get('/', (_req, res) => res.redirect(302, '/ui/'));
  r.get('/ui', (_req, res) => res.redirect(301, '/ui/'));
  r.use(
    '/ui',
    (_req, res, next) => {
      res.setHeader(
        'Content-Security-Policy',
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; " +
          "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
      );
      res.setHeader('X-Content-Type-Options', 'nosniff');
      next();
    },
    express.static(PUBLIC_DIR, { index: 'index.html', fallthrough: true }),
  );
  return (req, res, next) => {
    if (req.path === '/') return r(req, res, next);
    return onlyUnder(['/ui'], r)(req, res, next);
  };
}
