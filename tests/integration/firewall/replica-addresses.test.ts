import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ReplicaAddresses } from '../../../src/hosts/replica-addresses.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';

// Every live replica's address towards a host is management on that host's firewall: two
// replicas record what they computed in one database, and each reads both.
describe('replica addresses, shared through the database', () => {
  let database: TestDatabase;
  const knex = () => database.db.knex;

  beforeAll(async () => {
    database = await createTestDatabase(inject('templateDatabase'));
    await knex()('instances').insert([{ id: 'replica-a' }, { id: 'replica-b' }]);
  });

  afterAll(async () => {
    await database.drop();
  });

  it('when two replicas record their addresses towards a host, then each reads both', async () => {
    const a = new ReplicaAddresses(knex(), 'replica-a', true);
    const b = new ReplicaAddresses(knex(), 'replica-b', true);
    await a.record({ h1: '198.51.100.1', h2: '198.51.100.1' });
    await b.record({ h1: '198.51.100.2' });
    expect(await a.of(['h1', 'h2'])).toEqual(
      new Map([
        ['h1', ['198.51.100.1', '198.51.100.2']],
        ['h2', ['198.51.100.1']],
      ]),
    );
  });

  it('when a replica’s address towards a host changes, then the new one replaces the old', async () => {
    const b = new ReplicaAddresses(knex(), 'replica-b', true);
    await b.record({ h1: '198.51.100.3' });
    expect((await b.of(['h1'])).get('h1')).toEqual(['198.51.100.1', '198.51.100.3']);
  });

  it('when a replica has not beaten its heartbeat for long, then its address is no longer kept', async () => {
    await knex()('instances')
      .where({ id: 'replica-b' })
      .update({ heartbeat_at: knex().raw("now() - interval '10 minutes'") });
    const a = new ReplicaAddresses(knex(), 'replica-a', true);
    expect((await a.of(['h1'])).get('h1')).toEqual(['198.51.100.1']);
  });

  it('when a row holds something that is not an address, then it is never handed to a template', async () => {
    await knex()('instance_addresses').insert({
      instance_id: 'replica-a',
      host: 'h3',
      address: '1.2.3.4 } accept; chain x {',
    });
    const a = new ReplicaAddresses(knex(), 'replica-a', true);
    expect((await a.of(['h3'])).get('h3')).toBeUndefined();
  });

  it('when the database is the embedded one, then nothing is recorded or read', async () => {
    const solo = new ReplicaAddresses(knex(), 'replica-solo', false);
    await solo.record({ h9: '198.51.100.9' });
    expect(await solo.of(['h9'])).toEqual(new Map());
    expect(await knex()('instance_addresses').where({ host: 'h9' })).toEqual([]);
  });
});
