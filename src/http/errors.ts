/** A field that failed validation and why, as problem+json `errors[]` carries it. */
export interface FieldError {
  field: string;
  message: string;
}

const TYPE_BASE = 'https://routeplane.dev/problems/';

/**
 * The one base class for every error an operation can answer with. Its status and problem
 * type are the whole HTTP mapping: the problem middleware only serialises it.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly slug: string,
    readonly title: string,
    detail: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(detail);
  }
  get type(): string {
    return TYPE_BASE + this.slug;
  }
}

export class ValidationError extends AppError {
  constructor(
    detail: string,
    readonly fields: FieldError[] = [],
  ) {
    super(400, 'validation', 'Request validation failed', detail, { errors: fields });
  }
  static field(field: string, message: string): ValidationError {
    return new ValidationError(`${field}: ${message}`, [{ field, message }]);
  }
}

export class MalformedBodyError extends AppError {
  constructor(detail: string) {
    super(400, 'malformed-body', 'Malformed request body', detail);
  }
}

export class UnauthorizedError extends AppError {
  constructor(detail = 'A valid bearer token is required') {
    super(401, 'unauthorized', 'Unauthorized', detail);
  }
}

export class ForbiddenError extends AppError {
  constructor(detail: string) {
    super(403, 'forbidden', 'Forbidden', detail);
  }
}

export class NotFoundError extends AppError {
  constructor(detail: string) {
    super(404, 'not-found', 'Not found', detail);
  }
}

export class MethodNotAllowedError extends AppError {
  constructor(detail: string) {
    super(405, 'method-not-allowed', 'Method not allowed', detail);
  }
}

export class ConflictError extends AppError {
  constructor(detail: string, extra: Record<string, unknown> = {}) {
    super(409, 'conflict', 'Conflict', detail, extra);
  }
}

export class PayloadTooLargeError extends AppError {
  constructor(detail: string) {
    super(413, 'payload-too-large', 'Payload too large', detail);
  }
}

export class UnsupportedMediaTypeError extends AppError {
  constructor(detail: string) {
    super(415, 'unsupported-media-type', 'Unsupported media type', detail);
  }
}

export class HostUnreachableError extends AppError {
  constructor(host: string, detail: string, runId: string | null) {
    super(502, 'host-unreachable', 'Host unreachable', detail, { host, run_id: runId });
  }
}

/** A change is recorded but the host did not take it; the reconciler keeps retrying. */
export class ApplyFailedError extends AppError {
  constructor(
    detail: string,
    extra: {
      host: string;
      run_id: string | null;
      route_id?: string;
      rule_id?: string;
      set_id?: string;
    },
  ) {
    super(502, 'apply-failed', 'Apply failed', detail, extra);
  }
}

export class UpgradeRequiredError extends AppError {
  constructor(detail: string) {
    super(426, 'upgrade-required', 'Upgrade Required', detail);
  }
}

export class ServiceUnavailableError extends AppError {
  constructor(detail: string) {
    super(503, 'unavailable', 'Service unavailable', detail);
  }
}

export class InternalError extends AppError {
  constructor() {
    super(500, 'internal', 'Internal error', 'An unexpected error occurred; see the server log');
  }
}
