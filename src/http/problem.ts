import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from '../logger.ts';
import { requestContext } from '../logger.ts';
import {
  AppError,
  ForbiddenError,
  InternalError,
  MalformedBodyError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  UnauthorizedError,
  UnsupportedMediaTypeError,
  ValidationError,
  type FieldError,
} from './errors.ts';

interface ValidatorItem {
  path?: string;
  message?: string;
}

interface ForeignError {
  status?: number;
  statusCode?: number;
  type?: string;
  message?: string;
  errors?: ValidatorItem[];
  expose?: boolean;
}

/** express-openapi-validator reports `.body.x` / `/body/x`; problems name fields as `/body/x`. */
function fieldPath(path: string | undefined): string {
  if (!path) return '';
  return path.startsWith('.') ? '/' + path.slice(1).replace(/\./g, '/') : path;
}

const ONE_OF_NOISE = /^must match exactly one schema in oneOf$|^must be (array|object)$/;

/** Turns anything thrown below (ours, the validator's, body-parser's) into an AppError. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const e = (err ?? {}) as ForeignError;
  const status = e.status ?? e.statusCode;
  const message = e.message ?? 'error';
  // body-parser marks its own failures with a `type`
  switch (e.type) {
    case 'entity.parse.failed':
      return new MalformedBodyError(`The body is not valid JSON: ${message}`);
    case 'entity.too.large':
      return new PayloadTooLargeError('The request body is over the size limit');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new UnsupportedMediaTypeError(message);
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return new MalformedBodyError(message);
  }
  if (Array.isArray(e.errors) && status) {
    const all: FieldError[] = e.errors.map((x) => ({
      field: fieldPath(x.path),
      message: x.message ?? 'invalid',
    }));
    // A oneOf body (one route or an array of them) fails every branch; the branch the client
    // meant is the one with specific errors, so the other branch's type mismatch is noise.
    const specific = all.filter((f) => !ONE_OF_NOISE.test(f.message));
    const fields = specific.length > 0 ? specific : all;
    const detail = fields.map((f) => `${f.field}: ${f.message}`).join('; ') || message;
    switch (status) {
      case 400:
        return new ValidationError(detail, fields);
      case 401:
        return new UnauthorizedError(fields[0]?.message ?? message);
      case 403:
        return new ForbiddenError(fields[0]?.message ?? message);
      case 404:
        return new NotFoundError('No such endpoint');
      case 405:
        return new MethodNotAllowedError(detail);
      case 413:
        return new PayloadTooLargeError(detail);
      case 415:
        return new UnsupportedMediaTypeError(detail);
    }
  }
  if (status && status >= 400 && status < 500 && e.expose !== false) {
    return new AppError(status, 'client-error', 'Bad request', message);
  }
  return new InternalError();
}

/**
 * The problem+json body of an error: extension members first, so none may replace a standard
 * member (a route's `status` in `extra` once turned the problem's status into "pending").
 */
export function problemBody(problem: AppError, instance: string): string {
  return JSON.stringify({
    ...problem.extra,
    type: problem.type,
    title: problem.title,
    status: problem.status,
    detail: problem.message,
    instance: instance.slice(0, 2048),
    request_id: requestContext.getStore()?.requestId,
  });
}

export function notFoundHandler(): RequestHandler {
  return (_req, _res, next) => next(new NotFoundError('No such endpoint'));
}

/** The single place errors become HTTP responses: RFC 9457 problem+json, never a stack. */
export function problemHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const problem = toAppError(err);
    if (problem.status >= 500) {
      logger.error({ event: 'http.error', err, path: req.path }, 'request failed');
    } else {
      logger.debug({ event: 'http.problem', status: problem.status, detail: problem.message });
    }
    if (res.headersSent) return;
    // RFC 9110 §11.6.1: a 401 must say which scheme would be accepted.
    if (problem.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="routeplane"');
    if (problem instanceof MethodNotAllowedError) {
      const allow = (err as { headers?: { Allow?: string } }).headers?.Allow;
      if (allow) res.setHeader('Allow', allow);
    }
    res
      .status(problem.status)
      .type('application/problem+json')
      .send(problemBody(problem, req.originalUrl));
  };
}
