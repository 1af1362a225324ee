import express, { Router, type RequestHandler } from 'express';
import { getAbsoluteFSPath } from 'swagger-ui-dist';
import { onlyUnder } from './only-under.ts';
import type { Operations } from './operations.ts';

const INDEX = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>routeplane API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/initializer.js"></script>
</body></html>`;

const INITIALIZER = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });`;

/** The contract itself, in both forms. */
export function contractHandlers(contract: {
  yaml: string;
  document: object;
}): Pick<Operations, 'getContractYaml' | 'getContractJson'> {
  const json = JSON.stringify(contract.document);
  return {
    // GET /openapi.yaml
    getContractYaml: (_req, res) => {
      res.type('application/yaml').send(contract.yaml);
    },
    // GET /openapi.json
    getContractJson: (_req, res) => {
      res.type('application/json').send(json);
    },
  };
}

/** An interactive page for the contract, from local npm assets (no CDN). */
export function docsHandlers(): RequestHandler {
  return onlyUnder(['/docs'], docsRouter());
}

function docsRouter(): Router {
  const r = Router();
  r.get(['/docs', '/docs/'], (_req, res) => {
    res.type('html').send(INDEX);
  });
  r.get('/docs/initializer.js', (_req, res) => {
    res.type('application/javascript').send(INITIALIZER);
  });
  r.use('/docs', express.static(getAbsoluteFSPath(), { index: false, fallthrough: true }));
  return r;
}
