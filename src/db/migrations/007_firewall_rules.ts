import type { Knex } from 'knex';

// Firewall rules, the second kind of desired state on the shared core (lifecycle columns as
// routes have them), their events, and which hosts' firewalls routeplane manages.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('firewall_rules', (t) => {
    t.uuid('id').primary();
    t.text('host').notNullable();
    t.text('chain').notNullable();
    t.text('family').notNullable();
    t.text('protocol').notNullable();
    // src, dst, sport, dport, iif, oif, to: canonical, as the template renders them.
    t.jsonb('match').notNullable();
    t.text('action').notNullable();
    t.integer('priority').notNullable();
    // sha256 of every field but the comment and the schedule: one live rule per identity.
    t.text('identity').notNullable();
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
  });
  await knex.raw(`create unique index firewall_rules_identity on firewall_rules (identity)
    where status not in ('expired', 'deleted')`);
  await knex.raw(
    `create index firewall_rules_due_create on firewall_rules (create_at) where status = 'pending'`,
  );
  await knex.raw(`create index firewall_rules_due_delete on firewall_rules (delete_at)
    where status in ('pending', 'active', 'paused') and delete_at is not null`);
  await knex.schema.createTable('firewall_rule_events', (t) => {
    t.bigIncrements('id');
    t.uuid('rule_id').notNullable().references('firewall_rules.id').onDelete('cascade');
    t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('actor').notNullable();
    t.text('from_status').nullable();
    t.text('to_status').notNullable();
    t.text('action').notNullable();
    t.jsonb('detail').notNullable().defaultTo('{}');
    t.index(['rule_id', 'id']);
  });
  // A host's firewall is routeplane's from its first rule until an operator releases it.
  await knex.schema.createTable('host_firewalls', (t) => {
    t.text('host').primary();
    t.boolean('managed').notNullable();
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('host_firewalls');
  await knex.schema.dropTable('firewall_rule_events');
  await knex.schema.dropTable('firewall_rules');
}
