import { ValidationError, type FieldError } from '../http/errors.ts';
import { parsePrefix } from '../routes/route-input.ts';
import { parsePort } from './rule-input.ts';
import type { SetType } from './set-store.ts';

/**
 * A set's elements as a request lists them, canonical (masked prefixes, `low-high` port
 * ranges), deduplicated and sorted; or a 400 naming every element that is wrong and why.
 */
export function parseElements(values: string[], type: SetType, field: string): string[] {
  const errors: FieldError[] = [];
  const out = new Set<string>();
  values.forEach((value, i) => {
    const at = `${field}/${i}`;
    if (type === 'port') {
      const port = /^[0-9]{1,5}(-[0-9]{1,5})?$/.test(value) ? parsePort(value, at, errors) : null;
      if (port === null) errors.push({ field: at, message: `'${value}' is not a port or range` });
      else out.add(port);
      return;
    }
    try {
      out.add(parsePrefix(value, at).to);
    } catch (err) {
      if (err instanceof ValidationError) errors.push(...err.fields);
      else throw err;
    }
  });
  if (errors.length > 0) {
    throw new ValidationError(errors.map((e) => `${e.field}: ${e.message}`).join('; '), errors);
  }
  return [...out].sort();
}
