import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('host_snapshots', (t) => {
    t.text('host').primary();
    t.jsonb('state').nullable();
    t.timestamp('collected_at', { useTz: true }).nullable();
    t.uuid('run_id').nullable();
    t.boolean('reachable').nullable();
    t.timestamp('last_seen_at', { useTz: true }).nullable();
    t.text('last_error').nullable();
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('host_snapshots');
}
