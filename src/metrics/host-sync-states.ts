import type { Knex } from 'knex';
import { SYNC_STATES, type SyncState } from '../routes/types.ts';

/**
 * Hosts by sync state: each host with routes routeplane keeps on it (active ones, or any whose
 * last change has not settled) counts once, under the worst state among its routes. One
 * aggregate statement at scrape time, a handful of rows whatever the fleet's size.
 */
export async function hostsBySyncState(knex: Knex): Promise<Map<SyncState, number>> {
  const result = await knex.raw<{ rows: { state: string; hosts: number | string }[] }>(
    `select case worst when 5 then 'failed' when 4 then 'conflict' when 3 then 'drifted'
                       when 2 then 'applying' else 'in_sync' end as state,
            count(*) as hosts
       from (select host,
                    max(case sync_state when 'failed' then 5 when 'conflict' then 4
                                        when 'drifted' then 3 when 'applying' then 2
                                        else 1 end) as worst
               from routes
              where status = 'active' or sync_state <> 'in_sync'
              group by host) per_host
      group by worst`,
  );
  const counts = new Map<SyncState, number>(SYNC_STATES.map((s) => [s, 0]));
  for (const r of result.rows) counts.set(r.state as SyncState, Number(r.hosts));
  return counts;
}
