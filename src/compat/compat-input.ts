import { parseAddress, parsePrefix } from '../routes/route-input.ts';
import { AppError } from '../http/errors.ts';
import type { Family } from '../routes/types.ts';

/** route-manager answers invalid input with FastAPI's 422 and a `detail` naming the problem. */
export class CompatValidationError extends AppError {
  constructor(detail: string) {
    super(422, 'compat-validation', 'Unprocessable entity', detail);
  }
}

/** A route-manager body: pydantic ignored unknown fields, so do we. */
export interface CompatBody {
  to?: unknown;
  via?: unknown;
  dev?: unknown;
  create_at?: unknown;
  delete_at?: unknown;
}

function text(body: CompatBody, key: keyof CompatBody): string | null {
  const v = body[key];
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string') throw new CompatValidationError(`${key} must be a string`);
  return v;
}

/** Re-throws routeplane's own validation error as route-manager's 422 with the same reason. */
function as422<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof AppError && err.status === 400) {
      throw new CompatValidationError(err.message.replace(/^\/body\/(\w+): /, '$1: '));
    }
    throw err;
  }
}

export function compatDestination(body: CompatBody): { to: string; family: Family } {
  const to = text(body, 'to');
  if (!to) throw new CompatValidationError('to: field required');
  return as422(() => parsePrefix(to, '/body/to'));
}

export function compatGateway(body: CompatBody, family: Family): string | null {
  const via = text(body, 'via');
  return via === null ? null : as422(() => parseAddress(via, family, '/body/via'));
}

export function compatDevice(body: CompatBody): string | null {
  return text(body, 'dev');
}

// ISO 8601 with an explicit offset (Z or ±hh:mm); route-manager stored naive times and fired
// them hours late off-UTC, so a time without a zone is refused rather than guessed.
const WITH_ZONE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;

export function compatTime(body: CompatBody, key: 'create_at' | 'delete_at'): Date | null {
  const v = text(body, key);
  if (v === null) return null;
  const d = new Date(v.replace(' ', 'T').replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  if (!WITH_ZONE.test(v) || Number.isNaN(d.getTime())) {
    throw new CompatValidationError(
      /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(v) && !WITH_ZONE.test(v)
        ? `${key} must include timezone information`
        : `${key} is not a valid ISO 8601 date-time`,
    );
  }
  return d;
}
