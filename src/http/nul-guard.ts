import type { RequestHandler } from 'express';
import { ValidationError, type FieldError } from './errors.ts';

const NUL = '\u0000';
const MESSAGE = 'must not contain a NUL character (U+0000)';
/** Deeper bodies than this are refused by the contract anyway; the walk stops here. */
const MAX_DEPTH = 32;

function walk(value: unknown, at: string, depth: number, found: FieldError[]): void {
  if (typeof value === 'string') {
    if (value.includes(NUL)) found.push({ field: at, message: MESSAGE });
    return;
  }
  if (depth >= MAX_DEPTH || value === null || typeof value !== 'object') return;
  for (const [key, inner] of Object.entries(value)) {
    if (key.includes(NUL)) found.push({ field: `${at}/${key}`, message: MESSAGE });
    walk(inner, `${at}/${key}`, depth + 1, found);
  }
}

function decodedPath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/**
 * Postgres cannot store U+0000 in text (or jsonb), and a pattern-free string parameter would
 * carry one straight into a query that fails with a 500. No field of the contract has a use
 * for it, so it is refused once, here, for the path, the query and the body alike.
 */
export function nulGuard(): RequestHandler {
  return (req, _res, next) => {
    const found: FieldError[] = [];
    if (decodedPath(req.path).includes(NUL)) found.push({ field: '/path', message: MESSAGE });
    walk(req.query, '/query', 0, found);
    walk(req.body, '/body', 0, found);
    if (found.length === 0) return next();
    next(new ValidationError(found.map((f) => `${f.field}: ${f.message}`).join('; '), found));
  };
}
