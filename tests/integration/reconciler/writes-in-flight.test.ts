import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { HostWorkStore } from '../../../src/reconciler/host-work-store.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';

// What the reconciler's group commit waits for (reconciler.ts, IN_FLIGHT_WAIT_MS): write
// transactions that recorded host work and have not ended, counted on the real database.
describe('HostWorkStore.writesInFlight', () => {
  let database: TestDatabase;
  let work: HostWorkStore;

  beforeAll(async () => {
    database = await createTestDatabase(inject('templateDatabase'));
    work = new HostWorkStore(database.db.knex);
  });

  afterAll(async () => {
    await database?.drop();
  });

  it('when a write transaction has bumped hosts, then it counts as in flight until it commits', async () => {
    const trx = await database.db.knex.transaction();
    await work.bump(trx, ['h1', 'h2']);
    await work.bump(trx, ['h3']);
    expect(work.writesInFlight()).toBe(1);
    await trx.commit();
    await Promise.resolve();
    expect(work.writesInFlight()).toBe(0);
  });

  it('when it rolls back instead, then it is no longer in flight either', async () => {
    const trx = await database.db.knex.transaction();
    await work.bump(trx, ['h1']);
    expect(work.writesInFlight()).toBe(1);
    await trx.rollback();
    await Promise.resolve();
    expect(work.writesInFlight()).toBe(0);
  });
});
