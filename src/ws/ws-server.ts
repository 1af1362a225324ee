import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { sha256, type TokenRegistry } from '../auth/token-registry.ts';
import type { Config } from '../config.ts';
import { type AppError, ForbiddenError, NotFoundError, UnauthorizedError } from '../http/errors.ts';
import { problemBody, toAppError } from '../http/problem.ts';
import { authenticatorFor, bearerToken, type HeaderOf } from '../http/security.ts';
import type { Logger } from '../logger.ts';
import { newClientId, type ClientInfo, type Hub } from './hub.ts';
import { BEARER_SUBPROTOCOL_PREFIX, SUBPROTOCOL } from './protocol.ts';
import type { WsTickets } from './ws-tickets.ts';

export const WS_PATH = '/v1/ws';
/** Client messages are small commands; anything larger is refused by ws itself. */
const MAX_PAYLOAD = 64 * 1024;

export interface WsServerOptions {
  hub: Hub;
  tokens: TokenRegistry;
  tickets: WsTickets;
  config: Pick<Config, 'authMode' | 'gatewaySecret' | 'corsOrigins'>;
  logger: Logger;
}

/**
 * The WebSocket endpoint, on the API's own listener: the upgrade is authenticated like every
 * other operation (a bearer token; behind Kong the gateway's consumer), or for browsers with
 * a token offered as a subprotocol or a ticket from POST /v1/ws/tickets. Neither the token
 * nor the ticket is ever logged (the log names the path without its query).
 */
export function attachWebSocket(server: Server, opts: WsServerOptions): { close(): void } {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_PAYLOAD,
    // Never echo a bearer subprotocol back: only routeplane's own is selected.
    handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  });
  const authenticate = authenticatorFor(opts.tokens, opts.config);
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://routeplane.invalid');
    if (url.pathname !== WS_PATH) {
      refuse(socket, new NotFoundError('No WebSocket endpoint here'));
      return;
    }
    void (async () => {
      let info: ClientInfo;
      try {
        // Behind Kong the API cannot know the public origin; the gateway's key decides there.
        if (opts.config.authMode === 'token') checkOrigin(req, opts.config.corsOrigins);
        info = await who(req, url, authenticate, opts);
      } catch (err) {
        const problem = toAppError(err);
        opts.logger.info(
          { event: 'ws.refused', status: problem.status, path: WS_PATH },
          'WebSocket upgrade refused',
        );
        refuse(socket, problem);
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => opts.hub.attach(ws, info));
    })();
  };
  server.on('upgrade', onUpgrade);
  // A removed token (or one whose role changed) closes the sockets it opened.
  opts.tokens.onReplaced(() =>
    opts.hub.recheck((c) => {
      if (!c.tokenDigest) return true;
      const now = opts.tokens.verifyDigest(c.tokenDigest);
      return now?.name === c.actor.name && now.role === c.actor.role;
    }),
  );
  return {
    close: () => {
      server.off('upgrade', onUpgrade);
      opts.hub.close();
      wss.close();
    },
  };
}

/** Same-origin pages, clients that send no Origin (CLI, scripts), and CORS_ORIGINS only. */
function checkOrigin(req: IncomingMessage, allowed: string[]): void {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  try {
    if (new URL(origin).host === req.headers.host) return;
  } catch {
    // not a URL: refused below
  }
  if (allowed.includes(origin)) return;
  throw new ForbiddenError(`Origin ${origin.slice(0, 200)} may not open a WebSocket here`);
}

async function who(
  req: IncomingMessage,
  url: URL,
  authenticate: (h: HeaderOf) => { name: string; role: 'viewer' | 'operator' | 'admin' },
  opts: WsServerOptions,
): Promise<ClientInfo> {
  const header: HeaderOf = (name) => {
    const v = req.headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  };
  const id = newClientId();
  if (opts.config.authMode === 'kong') {
    return { id, actor: authenticate(header), tokenDigest: null };
  }
  const ticket = url.searchParams.get('ticket');
  if (ticket !== null) {
    const redeemed = await opts.tickets.redeem(ticket);
    if (!redeemed) throw new UnauthorizedError('The ticket is not valid (or was used, or expired)');
    return { id, ...redeemed };
  }
  const offered = (header('sec-websocket-protocol') ?? '')
    .split(',')
    .map((s) => s.trim())
    .find((p) => p.startsWith(BEARER_SUBPROTOCOL_PREFIX));
  const token = bearerToken(header) ?? offered?.slice(BEARER_SUBPROTOCOL_PREFIX.length);
  if (!token) throw new UnauthorizedError('A valid bearer token is required');
  const actor = opts.tokens.verify(token);
  if (!actor) throw new UnauthorizedError('The bearer token is not valid');
  return { id, actor, tokenDigest: sha256(token) };
}

/** An upgrade answered with its problem (the socket never became a WebSocket). */
function refuse(socket: Duplex, problem: AppError): void {
  const body = problemBody(problem, WS_PATH);
  socket.end(
    `HTTP/1.1 ${problem.status} ${problem.title.replace(/[^\x20-\x7e]/g, '')}\r\n` +
      'Content-Type: application/problem+json\r\n' +
      (problem.status === 401 ? 'WWW-Authenticate: Bearer realm="routeplane"\r\n' : '') +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}
