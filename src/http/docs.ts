import express, { Router, type RequestHandler } from 'express';
import { getAbsoluteFSPath } from 'swagger-ui-dist';
import { onlyUnder } from './only-under.ts';

const INDEX = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>routeplane API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/initializer.js"></script>
</body></html>`;

const INITIALIZER = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });`;

/** The contract and an interactive page for it, from local npm assets (no CDN). */
export function docsHandlers(contract: { yaml: string; document: object }): RequestHandler {
  return onlyUnder(['/openapi.', '/docs'], docsRouter(contract));
}

function docsRouter(contract: { yaml: string; document: object }): Router {
  const r = Router();
  const json = JSON.stringify(contract.document);
  r.get('/openapi.yaml', (_req, res) => {
    res.type('application/yaml').send(contract.yaml);
  });
  r.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(json);
  });
  r.get(['/docs', '/docs/'], (_req, res) => {
    res.type('html').send(INDEX);
  });
  r.get('/docs/initializer.js', (_req, res) => {
    res.type('application/javascript').send(INITIALIZER);
  });
  r.use('/docs', express.static(getAbsoluteFSPath(), { index: false, fallthrough: true }));
  return r;
}
