import type { Request } from 'express';
import { consumerFromHeaders } from '../auth/kong-consumer.ts';
import { GatewaySecret } from '../auth/kong-gateway-secret.ts';
import type { Actor } from '../auth/roles.ts';
import { isRole, roleSatisfies } from '../auth/roles.ts';
import type { TokenRegistry } from '../auth/token-registry.ts';
import type { Config } from '../config.ts';
import { ForbiddenError, InternalError, UnauthorizedError } from './errors.ts';

type OperationSchema = { 'x-required-role'?: unknown; operationId?: string };

function operationOf(req: Request): OperationSchema {
  return ((req as Request & { openapi?: { schema?: OperationSchema } }).openapi?.schema ??
    {}) as OperationSchema;
}

/** A request's header by name; an HTTP request and a WebSocket upgrade both answer it. */
export type HeaderOf = (name: string) => string | undefined;

export function bearerToken(header: HeaderOf): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header('authorization') ?? '');
  return match?.[1];
}

export type Authenticate = (header: HeaderOf) => Actor;

function tokenAuthenticator(tokens: TokenRegistry): Authenticate {
  return (header) => {
    const token = bearerToken(header);
    if (!token) throw new UnauthorizedError('A valid bearer token is required');
    const actor = tokens.verify(token);
    if (!actor) throw new UnauthorizedError('The bearer token is not valid');
    return actor;
  };
}

/**
 * AUTH_MODE=kong: Kong authenticated the consumer and sends the gateway secret as the bearer
 * token. The consumer headers count only next to that secret, so a forged
 * `X-Consumer-Groups` from anyone who can reach the API directly gets a 401.
 */
function kongAuthenticator(secret: string): Authenticate {
  const gateway = new GatewaySecret(secret);
  return (header) => {
    if (!gateway.matches(bearerToken(header))) {
      throw new UnauthorizedError('Requests must come through the gateway');
    }
    const consumer = consumerFromHeaders(header);
    if (consumer.kind === 'unauthenticated') throw new UnauthorizedError(consumer.detail);
    if (consumer.kind === 'no-role') {
      throw new ForbiddenError(
        `Consumer '${consumer.username}' is in none of the groups viewer, operator, admin`,
      );
    }
    return consumer.actor;
  };
}

export function authenticatorFor(
  tokens: TokenRegistry,
  auth: Pick<Config, 'authMode' | 'gatewaySecret'>,
): Authenticate {
  if (auth.authMode !== 'kong') return tokenAuthenticator(tokens);
  // loadConfig refuses kong mode without a secret; this guards other callers.
  if (!auth.gatewaySecret) throw new Error('AUTH_MODE=kong needs a gateway secret');
  return kongAuthenticator(auth.gatewaySecret);
}

/**
 * The validator's `bearerAuth` handler: authenticates the caller (a token of ours, or a Kong
 * consumer in kong mode), then enforces the role the operation declares in openapi.yaml
 * (`x-required-role`), the one place roles are written.
 */
export function bearerAuthHandler(
  tokens: TokenRegistry,
  auth: Pick<Config, 'authMode' | 'gatewaySecret'> = {
    authMode: 'token',
    gatewaySecret: undefined,
  },
) {
  const authenticate = authenticatorFor(tokens, auth);
  const who = auth.authMode === 'kong' ? 'consumer' : 'token';
  return (req: Request): true => {
    const actor = authenticate((name) => req.get(name));
    const op = operationOf(req);
    const need = op['x-required-role'];
    // A protected operation without a declared role is a contract bug: refuse rather than guess.
    if (!isRole(need)) throw new InternalError();
    if (!roleSatisfies(actor.role, need)) {
      throw new ForbiddenError(
        `This operation needs the ${need} role; ${who} '${actor.name}' has ${actor.role}`,
      );
    }
    req.actor = actor;
    return true;
  };
}

export function actorOf(req: Request): Actor {
  if (!req.actor) throw new UnauthorizedError();
  return req.actor;
}
