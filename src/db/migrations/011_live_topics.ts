import type { Knex } from 'knex';

// Live state streamed over the WebSocket, shared by every replica:
// - live_topics: one sequence per topic (a client resumes from the seq it last saw);
// - live_objects: what each topic shows now, by object key (a subscriber's `full`, and the
//   base every diff is computed against);
// - live_messages: the last WS_REPLAY messages of each topic, for resuming after a reconnect;
// - ws_tickets: short-lived, single-use tickets for browsers, which cannot set a header;
// - host_watch_leases: which replica watches which host (one at a time).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('live_topics', (t) => {
    t.text('topic').primary();
    t.bigInteger('seq').notNullable().defaultTo(0);
  });
  await knex.schema.createTable('live_objects', (t) => {
    t.text('topic').notNullable();
    t.text('key').notNullable();
    // What a publisher replaces as a whole (a host's routes in the `routes` topic).
    t.text('scope').notNullable().defaultTo('');
    t.jsonb('value').notNullable();
    t.primary(['topic', 'key']);
    t.index(['topic', 'scope']);
  });
  await knex.schema.createTable('live_messages', (t) => {
    t.text('topic').notNullable();
    t.bigInteger('seq').notNullable();
    t.jsonb('body').notNullable();
    t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['topic', 'seq']);
  });
  await knex.schema.createTable('ws_tickets', (t) => {
    t.text('digest').primary();
    t.text('actor').notNullable();
    t.text('role').notNullable();
    // The token the ticket was issued to: its sockets close when that token is removed.
    t.text('token_digest');
    t.timestamp('expires_at', { useTz: true }).notNullable();
  });
  await knex.schema.createTable('host_watch_leases', (t) => {
    t.text('host').primary();
    t.text('owner').notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const t of [
    'host_watch_leases',
    'ws_tickets',
    'live_messages',
    'live_objects',
    'live_topics',
  ]) {
    await knex.schema.dropTable(t);
  }
}
