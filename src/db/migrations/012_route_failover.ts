import type { Knex } from 'knex';

// Routes with candidate gateways (route failover):
// - failover: what was asked (candidates in order, health checks, mode, preempt, hold-down);
// - failover_state: where the route stands (gateways in use, each candidate's health as its
//   host sees it, the last switch; degraded is derived from them). `via` keeps the first gateway in use, so
//   everything that reads one gateway (the module, drift, compat) reads the current one.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('routes', (t) => {
    t.jsonb('failover').nullable();
    t.jsonb('failover_state').nullable();
  });
  // The prober and its decisions read the candidate routes of a host often.
  await knex.raw(
    `create index routes_failover on routes (host) where failover is not null and status = 'active'`,
  );
  await knex.schema.createTable('host_probe_leases', (t) => {
    t.text('host').primary();
    t.text('owner').notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('host_probe_leases');
  await knex.raw('drop index if exists routes_failover');
  await knex.schema.alterTable('routes', (t) => {
    t.dropColumn('failover_state');
    t.dropColumn('failover');
  });
}
