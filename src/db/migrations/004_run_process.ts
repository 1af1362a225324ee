import type { Knex } from 'knex';

// The process group a run's ansible-playbook leads: a later start-up stops a group whose owner
// died, after checking that /proc still shows that run's workspace on its command line (a pid
// alone may have been reused). Finished runs are pruned by age: finished_at gets an index.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('runs', (t) => {
    t.integer('pgid').nullable();
    t.index(['finished_at'], 'runs_finished_at_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('runs', (t) => {
    t.dropIndex(['finished_at'], 'runs_finished_at_idx');
    t.dropColumn('pgid');
  });
}
