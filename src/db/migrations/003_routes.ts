import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('routes', (t) => {
    t.uuid('id').primary();
    t.text('host').notNullable();
    // cidr, not text: containment filters (>>=, <<=) run in the database, and Postgres itself
    // refuses a prefix with host bits set.
    t.specificType('destination', 'cidr').notNullable();
    t.integer('table_id').notNullable();
    t.integer('metric').notNullable();
    t.text('via').nullable();
    t.text('dev').nullable();
    t.text('scope').nullable();
    t.text('src').nullable();
    t.boolean('onlink').notNullable().defaultTo(false);
    t.boolean('force').notNullable().defaultTo(false);
    t.timestamp('create_at', { useTz: true }).nullable();
    t.timestamp('delete_at', { useTz: true }).nullable();
    t.text('comment').nullable();
    t.text('status').notNullable();
    t.text('sync_state').notNullable();
    t.text('sync_error').nullable();
    t.jsonb('sync_conflict').nullable();
    t.timestamp('sync_retry_at', { useTz: true }).nullable();
    t.timestamp('synced_at', { useTz: true }).nullable();
    t.uuid('last_run_id').nullable();
    t.text('created_by').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('removed_at', { useTz: true }).nullable();
    t.text('removed_reason').nullable();
    t.text('removed_by').nullable();
    t.index(['host']);
    t.index(['status']);
  });
  // A route's identity: one live route per (host, table, destination, metric); expired and
  // deleted rows stay as history and never block a new one.
  await knex.raw(`create unique index routes_identity on routes (host, table_id, destination, metric)
    where status not in ('expired', 'deleted')`);
  await knex.raw(`create index routes_due_create on routes (create_at) where status = 'pending'`);
  await knex.raw(`create index routes_due_delete on routes (delete_at)
    where status in ('pending', 'active', 'paused') and delete_at is not null`);
  await knex.raw(`create index routes_unsynced on routes (host) where sync_state <> 'in_sync'`);
  await knex.raw(
    `create index routes_removed on routes (removed_at desc) where removed_at is not null`,
  );

  await knex.schema.createTable('route_events', (t) => {
    t.bigIncrements('id');
    t.uuid('route_id').notNullable().references('routes.id').onDelete('cascade');
    t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('actor').notNullable();
    t.text('from_status').nullable();
    t.text('to_status').notNullable();
    t.text('action').notNullable();
    t.jsonb('detail').notNullable().defaultTo('{}');
    t.index(['route_id', 'id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('route_events');
  await knex.schema.dropTable('routes');
}
