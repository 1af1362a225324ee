import type { Knex } from 'knex';

/**
 * Routes as the kernel keeps them:
 *
 * - `metric` and `table_id` are the kernel's 32-bit unsigned integers (the contract allows
 *   0..4294967295), so they widen to bigint; `integer` stopped at 2147483647 and a metric of
 *   3000000000 was a 500.
 * - The kernel stores an IPv6 route's metric 0 as 1024, and routes now say so from input on
 *   (src/routes/kernel-route.ts). Stored IPv6 routes with metric 0 are rewritten to 1024. Where
 *   that gives two live rows one identity (host, table, destination, metric), one stays live:
 *   the active one, else the one already at 1024, else the older; the other is marked
 *   `deleted` by actor `migration`, with an event saying why and which route took its place.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    `alter table routes alter column metric type bigint, alter column table_id type bigint`,
  );

  const losers = await knex.raw<{ rows: { id: string; status: string; kept: string }[] }>(
    // At most two live rows per (host, table, destination) here, one at 0 and one at 1024
    // (the identity index saw to that): a pair collides once 0 becomes 1024.
    `select id, status, kept from (
       select id, status,
              row_number() over w as rank,
              count(*) over (partition by host, table_id, destination) as n,
              first_value(id) over w as kept
         from routes
        where family(destination) = 6 and metric in (0, 1024)
          and status in ('pending', 'active', 'paused')
       window w as (partition by host, table_id, destination
                    order by (status = 'active') desc, (metric = 1024) desc, created_at, id)
     ) pairs
     where n > 1 and rank > 1`,
  );
  for (const r of losers.rows) {
    await knex('routes').where({ id: r.id }).update({
      status: 'deleted',
      // Nothing of its own is left in the kernel: the kernel route is the kept row's.
      sync_state: 'in_sync',
      sync_error: null,
      sync_conflict: null,
      removed_at: knex.fn.now(),
      removed_reason: 'deleted',
      removed_by: 'migration',
      updated_at: knex.fn.now(),
    });
    await knex('route_events').insert({
      route_id: r.id,
      actor: 'migration',
      from_status: r.status,
      to_status: 'deleted',
      action: 'delete',
      detail: JSON.stringify({
        reason:
          'the kernel stores an IPv6 metric 0 as 1024; with it, this route had the identity of another live route, which was kept',
        kept_route_id: r.kept,
      }),
    });
  }

  const rewritten = await knex.raw<{ rows: { id: string; status: string }[] }>(
    `update routes set metric = 1024, updated_at = now()
      where family(destination) = 6 and metric = 0
      returning id, status`,
  );
  if (rewritten.rows.length > 0) {
    await knex('route_events').insert(
      rewritten.rows.map((r) => ({
        route_id: r.id,
        actor: 'migration',
        from_status: r.status,
        to_status: r.status,
        action: 'migrate',
        detail: JSON.stringify({
          reason: 'the kernel stores an IPv6 metric 0 as 1024',
          metric: { from: 0, to: 1024 },
        }),
      })),
    );
  }
}

export async function down(knex: Knex): Promise<void> {
  // The metric rewrite stays (0 and 1024 are one IPv6 route in the kernel); narrowing fails
  // while a stored value is past 2147483647, as it should.
  await knex.raw(
    `alter table routes alter column metric type integer, alter column table_id type integer`,
  );
}
