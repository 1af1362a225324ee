import type pg from 'pg';

/**
 * The backend holding a two-key advisory lock `(classId, hashtext(key))` in the client's
 * database, or undefined when none does. Two-key locks show in pg_locks as classid/objid with
 * objsubid 2; a negative hash wraps to an unsigned objid, which `::oid` does too.
 */
export async function advisoryLockHolders(
  client: pg.Client,
  classId: number,
  key: string,
): Promise<number[]> {
  const { rows } = await client.query<{ pid: number }>(
    `select pid from pg_locks
      where locktype = 'advisory' and granted and objsubid = 2
        and database = (select oid from pg_database where datname = current_database())
        and classid = $1::int::oid and objid = hashtext($2)::oid`,
    [classId, key],
  );
  return rows.map((r) => r.pid);
}
