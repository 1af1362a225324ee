import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';
import { useLab } from '../../helpers/lab.ts';
import { spawnServer, type ServerProcess } from '../../helpers/server-process.ts';
import { openSocket, type TestSocket } from '../../helpers/ws-client.ts';

// Two server processes on one Postgres: every change reaches the clients of both, once, with
// the same seq; one replica watches a host, and the other takes it over when it dies.
const T = 180_000;
const postgres = inject('templateDatabase') !== null;
const routeKey = (dst: string) => `route/inet/main/${dst}/0`;

describe.skipIf(!postgres)('live state across two replicas on one database', { timeout: T }, () => {
  const fleet = useLab(2);
  let database: TestDatabase;
  const replicas: ServerProcess[] = [];
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    database = await createTestDatabase(inject('templateDatabase'));
    const env = {
      DATABASE_URL: database.url!,
      INVENTORY: fleet.lab.inventoryPath,
      WATCH_HOSTS: 'true',
      STATE_RESYNC_S: '3600',
    };
    replicas.push(...(await Promise.all([spawnServer(env), spawnServer(env)])));
    for (const r of replicas) {
      const s = await openSocket(r.url, { token: 'viewer' });
      s.send({ type: 'subscribe', topics: ['routes', 'hosts/h1'] });
      await s.next((m) => m.type === 'full' && m.topic === 'hosts/h1');
      sockets.push(s);
    }
  }, T);

  afterAll(async () => {
    for (const s of sockets) await s.close();
    await Promise.all(replicas.map((r) => r.stop()));
    for (const r of replicas) r.cleanup();
    await database?.drop();
  }, T);

  /** The messages of one socket whose diff names `key` (in added or changed). */
  const naming = (s: TestSocket, topic: string, key: string) =>
    s.received.filter(
      (m) => m.type === 'diff' && m.topic === topic && (key in m.added || key in m.changed),
    );

  it('delivers a route written through one replica to the clients of both, once each, with one seq', async () => {
    const res = await replicas[0]!.request('POST', '/v1/routes?wait=0', {
      body: { host: 'h2', to: '203.0.113.60/32', dev: 'eth0' },
      token: 'operator',
    });
    expect([201, 202], res.text).toContain(res.status);
    const id = res.body.id as string;
    const first = await Promise.all(
      sockets.map((s) => s.next((m) => m.type === 'diff' && m.topic === 'routes' && id in m.added)),
    );
    expect(first[0]!.seq).toBe(first[1]!.seq);
    await new Promise((r) => setTimeout(r, 1_000));
    for (const s of sockets) {
      const added = s.received.filter(
        (m) => m.type === 'diff' && m.topic === 'routes' && id in m.added,
      );
      expect(added).toHaveLength(1);
    }
  });

  it('delivers a route added by hand on a host to the clients of both, once each, with one seq', async () => {
    const key = routeKey('203.0.113.61/32');
    await nsExec(fleet.lab, 'h1', ['ip', 'route', 'add', '203.0.113.61/32', 'dev', 'eth0']);
    const got = await Promise.all(
      sockets.map((s) =>
        s.next((m) => m.type === 'diff' && m.topic === 'hosts/h1' && key in m.added),
      ),
    );
    expect(got[0]!.seq).toBe(got[1]!.seq);
    await new Promise((r) => setTimeout(r, 1_000));
    for (const s of sockets) expect(naming(s, 'hosts/h1', key)).toHaveLength(1);
  });

  it('resumes on the other replica: the diffs missed while away, in order, none twice', async () => {
    const a = await openSocket(replicas[0]!.url, { token: 'viewer' });
    a.send({ type: 'subscribe', topics: ['hosts/h1'] });
    const full = await a.next((m) => m.type === 'full');
    await a.close();
    for (const dst of ['203.0.113.62/32', '203.0.113.63/32']) {
      await nsExec(fleet.lab, 'h1', ['ip', 'route', 'add', dst, 'dev', 'eth0']);
      await sockets[0]!.next(
        (m) => m.type === 'diff' && m.topic === 'hosts/h1' && routeKey(dst) in m.added,
      );
    }
    const b = await openSocket(replicas[1]!.url, { token: 'viewer' });
    b.send({ type: 'subscribe', topics: ['hosts/h1'], since: { 'hosts/h1': full.seq } });
    await b.next((m) => m.type === 'resumed');
    const seqs = b.received.filter((m) => m.type === 'diff').map((m) => m.seq as number);
    expect(seqs[0]).toBe(full.seq + 1);
    expect(seqs).toEqual([...new Set(seqs)].sort((x, y) => x - y));
    const added = b.received.filter((m) => m.type === 'diff').flatMap((m) => Object.keys(m.added));
    expect(added).toEqual(
      expect.arrayContaining([routeKey('203.0.113.62/32'), routeKey('203.0.113.63/32')]),
    );
    await b.close();
  });

  it('when the replica watching a host is killed, the other takes the host over', async () => {
    const knex = database.db.knex;
    const lease = (await knex('host_watch_leases').where({ host: 'h1' }).first()) as {
      owner: string;
    };
    const watcher = replicas.find((r) => lease.owner.includes(`:${r.pid}:`))!;
    expect(watcher).toBeDefined();
    const survivor = replicas.find((r) => r !== watcher)!;
    const s = sockets[replicas.indexOf(survivor)]!;
    await watcher.kill();
    const key = routeKey('203.0.113.64/32');
    await nsExec(fleet.lab, 'h1', ['ip', 'route', 'add', '203.0.113.64/32', 'dev', 'eth0']);
    await s.next((m) => m.type === 'diff' && m.topic === 'hosts/h1' && key in m.added, 60_000);
    const now = (await knex('host_watch_leases').where({ host: 'h1' }).first()) as {
      owner: string;
    };
    expect(now.owner).toContain(`:${survivor.pid}:`);
  });
});
