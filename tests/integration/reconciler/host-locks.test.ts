import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  InProcessHostLocks,
  PostgresHostLocks,
  type HostLease,
  type HostLocks,
} from '../../../src/reconciler/host-locks.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';

// At most one apply run per host, across processes: two lock holders stand for two routeplane
// processes (on Postgres, two independent connections, as two processes would have).
const postgres = inject('templateDatabase') !== null;

function behavesAsHostLocks(name: string, make: () => [HostLocks, HostLocks]) {
  describe(name, () => {
    const leases: HostLease[] = [];
    const take = async (locks: HostLocks, hosts: string[]) => {
      const lease = await locks.acquire(hosts);
      leases.push(lease);
      return lease;
    };
    afterAll(async () => {
      for (const l of leases) await l.release();
    });

    it('when a second holder asks for hosts the first holds, then it gets only the free ones', async () => {
      const [a, b] = make();
      const first = await take(a, ['h1', 'h2']);
      expect(first.hosts.sort()).toEqual(['h1', 'h2']);
      const second = await take(b, ['h2', 'h3']);
      expect(second.hosts).toEqual(['h3']);
      await first.release();
      await second.release();
    });

    it('when the first holder releases, then the second gets those hosts', async () => {
      const [a, b] = make();
      const first = await take(a, ['h4']);
      expect((await take(b, ['h4'])).hosts).toEqual([]);
      await first.release();
      const again = await take(b, ['h4']);
      expect(again.hosts).toEqual(['h4']);
      await again.release();
    });
  });
}

describe.runIf(postgres)('host locks on Postgres', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase(inject('templateDatabase'));
  });
  afterAll(async () => {
    await database?.drop();
  });
  behavesAsHostLocks('two processes (PostgresHostLocks on one database)', () => [
    new PostgresHostLocks(database.url!),
    new PostgresHostLocks(database.url!),
  ]);
});

// PGlite: one process owns the data directory; two passes of its reconciler share one set.
const shared = new InProcessHostLocks();
behavesAsHostLocks('two apply passes in one process (InProcessHostLocks)', () => [shared, shared]);
