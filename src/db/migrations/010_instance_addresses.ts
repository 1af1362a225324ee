import type { Knex } from 'knex';

// Each replica's source address towards each host: every live replica's address is
// management on a host's firewall, not only the address of the replica that applies it.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('instance_addresses', (t) => {
    t.text('instance_id').notNullable();
    t.text('host').notNullable();
    t.text('address').notNullable();
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['instance_id', 'host']);
    t.index(['host']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('instance_addresses');
}
