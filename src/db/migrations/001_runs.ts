import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('runs', (t) => {
    t.uuid('id').primary();
    t.text('kind').notNullable();
    t.text('playbook').notNullable();
    t.jsonb('hosts').notNullable();
    t.jsonb('limit_spec').notNullable();
    t.text('status').notNullable();
    t.text('requested_by').notNullable();
    t.integer('rc').nullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('started_at', { useTz: true }).nullable();
    t.timestamp('finished_at', { useTz: true }).nullable();
    t.jsonb('summary').notNullable().defaultTo('{}');
    t.jsonb('results').notNullable().defaultTo('[]');
    t.text('error').nullable();
    t.text('log').notNullable().defaultTo('');
    // The instance that executes the run: lets a restarted replica tell its own runs from
    // runs orphaned by a process that died.
    t.text('owner').notNullable();
    t.index(['created_at']);
    t.index(['status']);
  });
  await knex.raw(`create index runs_hosts_gin on runs using gin (hosts jsonb_path_ops)`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('runs');
}
