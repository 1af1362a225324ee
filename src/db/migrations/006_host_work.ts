import type { Knex } from 'knex';

// Durable per-host work (ADR 008): what each host should run and how far it got, so that a
// write, a scheduled transition and a retry survive the process that recorded them, and
// replicas share the apply work by claiming rows.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('host_work', (t) => {
    t.text('host').primary();
    // Bumped in the same transaction as every change to the host's desired state.
    t.bigInteger('desired_gen').notNullable().defaultTo(0);
    // The generation the last finished run carried (successful or not): waiters settle on it.
    t.bigInteger('attempted_gen').notNullable().defaultTo(0);
    // The generation the last successful run carried.
    t.bigInteger('applied_gen').notNullable().defaultTo(0);
    t.integer('attempts').notNullable().defaultTo(0);
    // When the host must be applied next (a write: now; a failure: its retry time); null when
    // nothing is owed.
    t.timestamp('due_at', { useTz: true }).nullable();
    // When periodic convergence re-applies it next (CONVERGE_INTERVAL_S), if nothing sooner.
    t.timestamp('converge_at', { useTz: true }).nullable();
    t.text('last_error').nullable();
    t.uuid('last_run_id').nullable();
    t.timestamp('applied_at', { useTz: true }).nullable();
    // The claim: which instance holds the host, with which lock epoch, carrying what.
    t.text('claimed_by').nullable();
    t.timestamp('claimed_at', { useTz: true }).nullable();
    t.bigInteger('epoch').notNullable().defaultTo(0);
    t.bigInteger('run_gen').nullable();
    t.uuid('run_id').nullable();
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`create index host_work_due on host_work (due_at) where due_at is not null`);
  await knex.raw(
    `create index host_work_converge on host_work (converge_at) where converge_at is not null`,
  );
  await knex.raw(
    `create index host_work_claimed on host_work (claimed_by) where claimed_by is not null`,
  );
  // Hosts whose kernels may differ from the routes recorded so far are owed a run at once.
  await knex.raw(`insert into host_work (host, desired_gen, due_at)
    select distinct host, 1, now() from routes
     where status = 'active' or sync_state <> 'in_sync'`);
  // Replicas: an instance is dead only when its presence lock is free and its heartbeat is
  // old, so one that lost its connection (a Postgres restart) is not taken for dead while it
  // reconnects.
  await knex.schema.createTable('instances', (t) => {
    t.text('id').primary();
    t.timestamp('started_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('heartbeat_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('instances');
  await knex.schema.dropTable('host_work');
}
