import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { InstancePresence } from '../../../src/runs/instance-presence.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';
import { poll } from '../../helpers/routes.ts';
import { advisoryLockHolders } from '../../helpers/advisory-locks.ts';

// Instance presence across a lost connection (a Postgres restart, an idle-session timeout, an
// operator's pg_terminate_backend): the instance comes back on its own, and meanwhile no other
// replica takes it for dead.
const postgres = inject('templateDatabase') !== null;
const PRESENCE_CLASS = 0x7270494e;

describe.skipIf(!postgres)('instance presence over a lost connection (Postgres)', () => {
  let database: TestDatabase;
  let admin: pg.Client;
  const presences: InstancePresence[] = [];

  const announce = async () => {
    const p = new InstancePresence({ backend: 'postgres', url: database.url! });
    await p.announce();
    presences.push(p);
    return p;
  };

  /** The backend holding an instance's presence lock, or undefined when none does. */
  const holderOf = async (id: string) => (await advisoryLockHolders(admin, PRESENCE_CLASS, id))[0];

  beforeAll(async () => {
    database = await createTestDatabase(inject('templateDatabase'));
    admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
  });

  afterAll(async () => {
    for (const p of presences) await p.withdraw();
    await admin?.end();
    await database?.drop();
  });

  it('when an instance announces itself, then it holds its lock and has a heartbeat row', async () => {
    const a = await announce();
    expect(await holderOf(a.id)).toBeTypeOf('number');
    const { rows } = await admin.query('select id from instances where id = $1', [a.id]);
    expect(rows).toHaveLength(1);
  });

  it('when its connection is terminated, then another instance does not call it dead, and it re-takes its lock', async () => {
    const a = await announce();
    const b = await announce();
    const pid = await holderOf(a.id);
    await admin.query('select pg_terminate_backend($1)', [pid]);
    await poll(
      'the lock released',
      async () => ((await holderOf(a.id)) === pid ? undefined : true),
      5_000,
    );

    // Lock gone (or already re-taken), heartbeat fresh: alive either way.
    expect(await b.deadAmong([a.id])).toEqual([]);
    expect(await b.othersAlive()).toBeGreaterThanOrEqual(1);

    const again = await poll('the lock re-taken', async () => holderOf(a.id), 15_000);
    expect(again).not.toBe(pid);
  });

  it('when an instance has neither its lock nor a fresh heartbeat, then it is dead', async () => {
    const b = await announce();
    const gone = 'gone-host:424242:cafef00d';
    await admin.query(
      `insert into instances (id, heartbeat_at) values ($1, now() - interval '5 minutes')`,
      [gone],
    );
    expect(await b.deadAmong([gone])).toEqual([gone]);
  });

  it('when an instance withdraws, then its row is gone and others no longer count it', async () => {
    const a = await announce();
    const b = await announce();
    const before = await b.othersAlive();
    await a.withdraw();
    const { rows } = await admin.query('select id from instances where id = $1', [a.id]);
    expect(rows).toEqual([]);
    expect(await b.othersAlive()).toBe(before - 1);
  });
});
