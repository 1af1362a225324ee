import type { Knex } from 'knex';

// Named sets of addresses or ports that firewall rules refer to (`@name`), kept for a host or
// a group (`target`), with an event per change; a deleted set keeps its row and events.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('firewall_sets', (t) => {
    t.uuid('id').primary();
    t.text('name').notNullable();
    // A host, or a group: the set is visible to each of its members.
    t.text('target').notNullable();
    t.text('type').notNullable();
    t.text('comment').nullable();
    t.text('created_by').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('deleted_at', { useTz: true }).nullable();
    t.text('deleted_by').nullable();
  });
  await knex.raw(`create unique index firewall_sets_live_name on firewall_sets (target, name)
    where deleted_at is null`);
  await knex.schema.createTable('firewall_set_elements', (t) => {
    t.uuid('set_id').notNullable().references('firewall_sets.id').onDelete('cascade');
    // Canonical: a masked prefix (or an address), or a port or low-high range.
    t.text('element').notNullable();
    t.text('added_by').notNullable();
    t.timestamp('added_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['set_id', 'element']);
  });
  await knex.schema.createTable('firewall_set_events', (t) => {
    t.bigIncrements('id');
    t.uuid('set_id').notNullable().references('firewall_sets.id').onDelete('cascade');
    t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('actor').notNullable();
    // create, add, remove, delete
    t.text('action').notNullable();
    t.jsonb('elements').notNullable().defaultTo('[]');
    t.index(['set_id', 'id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('firewall_set_events');
  await knex.schema.dropTable('firewall_set_elements');
  await knex.schema.dropTable('firewall_sets');
}
