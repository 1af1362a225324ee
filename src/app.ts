import express, { type Express } from 'express';
import type { TokenRegistry } from './auth/token-registry.ts';
import type { Config } from './config.ts';
import {
  COMPAT_PATHS,
  compatErrorHandler,
  compatHandlers,
  compatPathAliases,
} from './compat/compat-handlers.ts';
import type { CompatService } from './compat/compat-service.ts';
import { hostsHandlers } from './hosts/hosts-handlers.ts';
import type { HostsService } from './hosts/hosts-service.ts';
import { firewallHandlers } from './firewall/firewall-handlers.ts';
import type { SetService } from './firewall/set-service.ts';
import { setHandlers } from './firewall/set-handlers.ts';
import type { FirewallService } from './firewall/firewall-service.ts';
import type { FirewallPreview } from './firewall/firewall-preview.ts';
import { loadContract, withoutExamples } from './http/contract.ts';
import { announceArrivingWrites } from './http/arriving-writes.ts';
import { contractHandlers, docsHandlers } from './http/docs.ts';
import './http/express-augment.ts';
import { healthHandlers, type ReadinessProbe } from './http/health-handlers.ts';
import { notFoundHandler, problemHandler } from './http/problem.ts';
import { nulGuard } from './http/nul-guard.ts';
import { openApiValidation } from './http/openapi-validation.ts';
import { pipeline } from './http/pipeline.ts';
import { operationDispatcher } from './http/operations.ts';
import { requestContextMiddleware } from './http/request-context.ts';
import { bearerAuthHandler } from './http/security.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics/metrics.ts';
import { routesHandlers } from './routes/routes-handlers.ts';
import type { RoutesService } from './routes/routes-service.ts';
import { runsHandlers } from './runs/runs-handlers.ts';
import type { RunsService } from './runs/runs-service.ts';
import { cors } from './http/cors.ts';
import { uiHandlers } from './ui/ui-handlers.ts';
import { wsHandlers } from './ws/ws-handlers.ts';
import type { WsTickets } from './ws/ws-tickets.ts';

export interface AppDependencies {
  config: Pick<
    Config,
    | 'bodyLimit'
    | 'validateResponses'
    | 'routeWaitDefaultMs'
    | 'authMode'
    | 'gatewaySecret'
    | 'corsOrigins'
  >;
  logger: Logger;
  tokens: TokenRegistry;
  readiness: ReadinessProbe;
  runs: RunsService;
  hosts: HostsService;
  routes: RoutesService;
  firewall: FirewallService;
  firewallPreview: FirewallPreview;
  sets: SetService;
  compat: CompatService | null;
  tickets: WsTickets;
  /** HTTP request durations by operationId go here when given. */
  metrics?: Metrics;
  /** Announces a write as it arrives (HostWorkStore.expectWrite). */
  expectWrite: () => () => void;
}

/** The Express app, without listening: the server and the tests both build it here. */
export function buildApp(deps: AppDependencies): Express {
  const contract = loadContract();
  const validation = openApiValidation({
    apiSpec: withoutExamples(contract.document),
    validateRequests: { allErrors: true, allowUnknownQueryParameters: false },
    validateResponses: deps.config.validateResponses ? { onError: undefined } : false,
    validateSecurity: { handlers: { bearerAuth: bearerAuthHandler(deps.tokens, deps.config) } },
    validateFormats: true,
  });
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  const metrics = deps.metrics;
  const json = express.json({
    limit: deps.config.bodyLimit,
    strict: false,
    type: ['application/json', 'application/*+json'],
  });
  app.use(
    pipeline([
      requestContextMiddleware(
        deps.logger,
        metrics &&
          ((req, res, seconds) => {
            // Requests refused before validation (a malformed body) still name their operation.
            const op =
              (req as { openapi?: { schema?: { operationId?: string } } }).openapi?.schema
                ?.operationId ??
              validation.matcher()?.operationId(req.originalUrl.split('?')[0]!, req.method);
            metrics.httpRequest(op, res.statusCode, seconds);
          }),
      ),
      cors(deps.config.corsOrigins),
      compatPathAliases(),
      announceArrivingWrites((req) => {
        try {
          const op = validation.matcher()?.match(req.path, req.method)?.schema;
          return op?.['x-changes-desired-state'] === true;
        } catch {
          return false; // a malformed path: the validator refuses it below
        }
      }, deps.expectWrite),
      docsHandlers(),
      uiHandlers(),
      // A request without a body (every read) skips the parser's stream checks: type-is's
      // hasBody, the test body-parser itself makes first, leaving req.body undefined likewise.
      (req, res, next) => {
        const h = req.headers;
        if (
          h['transfer-encoding'] !== undefined ||
          !isNaN(h['content-length'] as unknown as number)
        ) {
          return json(req, res, next);
        }
        req.body = undefined;
        next();
      },
      nulGuard(),
      validation.middleware,
      operationDispatcher({
        ...healthHandlers(deps.readiness),
        ...contractHandlers(contract),
        ...hostsHandlers(deps.hosts),
        ...runsHandlers(deps.runs),
        ...routesHandlers(deps.routes, deps.config.routeWaitDefaultMs),
        ...compatHandlers(deps.compat),
        ...firewallHandlers(deps.firewall, deps.firewallPreview, deps.config.routeWaitDefaultMs),
        ...setHandlers(deps.sets, deps.config.routeWaitDefaultMs),
        ...wsHandlers(deps.tickets, deps.config.authMode),
      }),
    ]),
  );
  app.use(notFoundHandler());
  // route-manager clients expect FastAPI's {"detail"} errors on its paths, and only there.
  app.use(COMPAT_PATHS, compatErrorHandler(deps.logger));
  app.use(problemHandler(deps.logger));
  return app;
}
