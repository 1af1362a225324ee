import type { Knex } from 'knex';
import type pg from 'pg';

/**
 * One SQL statement with `?` placeholders, run on whatever holds the session: the pool (knex),
 * a transaction, or a dedicated connection whose session advisory locks must hold the claim.
 * Arrays travel as JSON text (`jsonb_array_elements_text(?::jsonb)`): knex.raw would expand a
 * JS array binding into a list.
 */
export type Sql = <T = Record<string, unknown>>(text: string, params?: unknown[]) => Promise<T[]>;

export function knexSql(k: Knex | Knex.Transaction): Sql {
  return async <T>(text: string, params: unknown[] = []) =>
    ((await k.raw(text, params as Knex.RawBinding[])) as { rows: T[] }).rows;
}

export function clientSql(c: pg.Client): Sql {
  return async <T>(text: string, params: unknown[] = []) => {
    let i = 0;
    const res = await c.query(
      text.replace(/\?/g, () => `$${++i}`),
      params,
    );
    return res.rows as T[];
  };
}
