import type { Request } from 'express';
import type { Actor } from '../auth/roles.ts';
import { isRole, roleSatisfies } from '../auth/roles.ts';
import type { TokenRegistry } from '../auth/token-registry.ts';
import { ForbiddenError, InternalError, UnauthorizedError } from './errors.ts';

type OperationSchema = { 'x-required-role'?: unknown; operationId?: string };

function operationOf(req: Request): OperationSchema {
  return ((req as Request & { openapi?: { schema?: OperationSchema } }).openapi?.schema ??
    {}) as OperationSchema;
}

/**
 * The validator's `bearerAuth` handler: authenticates the token, then enforces the role the
 * operation declares in openapi.yaml (`x-required-role`), the one place roles are written.
 */
export function bearerAuthHandler(tokens: TokenRegistry) {
  return (req: Request): true => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new UnauthorizedError('A valid bearer token is required');
    const actor = tokens.verify(match[1]!);
    if (!actor) throw new UnauthorizedError('The bearer token is not valid');
    const op = operationOf(req);
    const need = op['x-required-role'];
    // A protected operation without a declared role is a contract bug: refuse rather than guess.
    if (!isRole(need)) throw new InternalError();
    if (!roleSatisfies(actor.role, need)) {
      throw new ForbiddenError(
        `This operation needs the ${need} role; token '${actor.name}' has ${actor.role}`,
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
