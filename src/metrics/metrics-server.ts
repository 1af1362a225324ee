import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../logger.ts';
import type { Metrics } from './metrics.ts';

export interface MetricsListener {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * `/metrics` on a listener of its own (METRICS_PORT, METRICS_HOST): never on the API's port,
 * so neither Kong nor an API client reaches it, and it needs no token. It answers GET and
 * HEAD of /metrics and nothing else.
 */
export async function startMetricsServer(opts: {
  metrics: Metrics;
  port: number;
  host: string;
  logger: Logger;
}): Promise<MetricsListener> {
  const { metrics, logger } = opts;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      res.end('method not allowed\n');
      return;
    }
    metrics.exposition().then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        logger.error({ event: 'metrics.scrape_failed', err }, 'metrics could not be collected');
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('error\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shown = opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host;
  logger.info({ event: 'metrics.listening', port, host: opts.host }, 'metrics listening');
  return {
    url: `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}/metrics`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
