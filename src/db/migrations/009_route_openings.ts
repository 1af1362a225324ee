import type { Knex } from 'knex';

// A route's firewall openings (`allow`): the route keeps what was asked for, and each opening
// is a firewall rule linked to it (route_id), following its lifecycle.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('routes', (t) => {
    t.jsonb('allow').nullable();
  });
  await knex.schema.alterTable('firewall_rules', (t) => {
    t.uuid('route_id').nullable();
    t.index(['route_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('firewall_rules', (t) => {
    t.dropIndex(['route_id']);
    t.dropColumn('route_id');
  });
  await knex.schema.alterTable('routes', (t) => {
    t.dropColumn('allow');
  });
}
