import { readFileSync, writeFileSync } from 'node:fs';
import { dump, load } from 'js-yaml';
import type { Knex } from 'knex';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { findHost, type Lab } from '../../../src/lab/index.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';
import {
  answerFrom,
  kernelGateways,
  makeGateway,
  SERVICE,
  SERVICE_NET,
  SERVICE_PORT,
  setLink,
} from '../../helpers/gateways.ts';
import { useLab } from '../../helpers/lab.ts';
import { FAST_RETRIES, poll } from '../../helpers/routes.ts';
import { liveProcesses, sleep } from '../../helpers/runs.ts';
import { spawnServer, type ServerProcess } from '../../helpers/server-process.ts';
import { useTestServer } from '../../helpers/server.ts';
import { tcpReachable } from '../../helpers/tcp-probe.ts';

// Route failover across a server killed with -9, and with a firewall-managed gateway. Lab hosts
// h1 and h2 are the gateways g1 and g2, each holding 203.0.113.10 with a listener answering its
// name; the other hosts route 203.0.113.0/24 via [g1, g2] with an icmp check every second.
const T = 300_000;
const MOVE_MS = 20_000;
// An apply after a restart: the new server's start-up, then an ansible run on two busy cores.
const RESTART_MS = 90_000;
const postgres = inject('templateDatabase') !== null;
const ICMP = { type: 'icmp', interval_s: 1, timeout_s: 0.5 };

interface ApiRoute {
  id: string;
  host: string;
  active_via: string;
  degraded: boolean;
  candidates: { via: string; health: string }[];
  last_switch: { at: string; from: string; to: string; reason: string } | null;
  sync: { state: string; error: string | null };
}

type Request = ServerProcess['request'];

const routeOf = async (request: Request, id: string) =>
  (await request('GET', `/v1/routes/${id}`)).body as unknown as ApiRoute;

const eventsOf = async (request: Request, id: string) =>
  ((await request('GET', `/v1/routes/${id}/events`)).body as { items: { action: string }[] }).items;

const failovers = async (request: Request, id: string) =>
  (await eventsOf(request, id)).filter((e) => e.action === 'failover');

const healthOf = (r: ApiRoute, via: string) => r.candidates.find((c) => c.via === via)?.health;

/** Waits until the route on `host` uses `gw` in the API, in the kernel, and for a connection. */
function onGateway(
  lab: Lab,
  request: Request,
  id: string,
  host: string,
  gw: string,
  name: string | null,
  ms = MOVE_MS,
) {
  return poll(
    `${host} on ${name ?? gw}`,
    async () => {
      const r = await routeOf(request, id);
      if (r.active_via !== gw) return undefined;
      if ((await kernelGateways(lab, host, SERVICE_NET)).join() !== gw) return undefined;
      if (name !== null && (await answerFrom(lab, host)) !== name) return undefined;
      return r;
    },
    ms,
  );
}

/**
 * A session of the test's own holding the apply lock of each host (HOST_LOCK_CLASS 0x7270484f,
 * src/reconciler/host-claims.ts), as a run of another replica would: nobody can claim them.
 * pg_advisory_lock waits for a run that holds one to end. Closing the session releases them.
 */
async function holdHostLocks(url: string, hosts: readonly string[]) {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  for (const host of hosts) {
    await client.query(`select pg_advisory_lock(x'7270484f'::int, hashtext($1))`, [host]);
  }
  let ended = false;
  return {
    async release() {
      if (ended) return;
      ended = true;
      await client.end().catch(() => undefined);
    },
  };
}

/**
 * kill -9 of a server process and of everything it started, as a machine going down: its
 * runner, runs, SSH masters and the watchers’ and probers’ ssh sessions. What it leaves on
 * disk (its instance’s workspace) is the next server’s to sweep.
 */
async function crash(server: ServerProcess): Promise<void> {
  const all = await liveProcesses();
  const descendants = new Set<number>([server.pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) {
      if (descendants.has(p.ppid) && !descendants.has(p.pid)) {
        descendants.add(p.pid);
        grew = true;
      }
    }
  }
  await server.kill();
  for (const pid of descendants) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

async function dbNow(knex: Knex): Promise<Date> {
  const { rows } = await knex.raw<{ rows: { now: Date }[] }>('select now() as now');
  return rows[0]!.now;
}

/** Apply runs that carried `host`, created at or after `since`, oldest first. */
async function applyRunsSince(knex: Knex, since: Date, host: string) {
  return (await knex('runs')
    .where({ kind: 'apply' })
    .whereRaw('hosts @> ?::jsonb', [JSON.stringify([host])])
    .where('created_at', '>=', since)
    .orderBy('created_at')
    .select('id', 'status', 'owner')) as { id: string; status: string; owner: string }[];
}

/** The host's work row, generations as numbers (node-pg hands int8 back as text). */
async function hostWork(knex: Knex, host: string) {
  const row = await knex('host_work').where({ host }).first();
  expect(row, `host_work row of ${host}`).toBeDefined();
  return {
    desired: Number(row.desired_gen),
    attempted: Number(row.attempted_gen),
    applied: Number(row.applied_gen),
    dueAt: row.due_at as Date | null,
    claimedBy: row.claimed_by as string | null,
  };
}

describe.skipIf(!postgres)(
  'route failover across a server killed with -9 (Postgres, lab of 5 hosts)',
  { timeout: T },
  () => {
    const TARGETS = ['h3', 'h4', 'h5'] as const;
    const fleet = useLab(5);
    let database: TestDatabase;
    const started: ServerProcess[] = [];
    const listeners: { kill(): void }[] = [];
    let locks: { release(): Promise<void> } | undefined;
    const ids = new Map<string, string>();
    const addr = (h: string) => fleet.lab.hosts.find((x) => x.name === h)!.ipv4;
    const g1 = () => addr('h1');
    const g2 = () => addr('h2');
    const id = (host: string) => ids.get(host)!;
    const current = () => started.at(-1)!;

    const spawn = async () => {
      const s = await spawnServer({
        DATABASE_URL: database.url!,
        INVENTORY: fleet.lab.inventoryPath,
        WATCH_HOSTS: 'true',
        FAILOVER_CHECKS: 'true',
        // A restart shares the data dir, as a restarted service would (its pid file is stale).
        ...(started[0] ? { DATA_DIR: started[0].dataDir } : {}),
        ...FAST_RETRIES,
      });
      started.push(s);
      return s;
    };

    beforeAll(async () => {
      database = await createTestDatabase(inject('templateDatabase'));
      listeners.push(await makeGateway(fleet.lab, 'h1', 'g1'));
      listeners.push(await makeGateway(fleet.lab, 'h2', 'g2'));
    }, T);

    afterAll(async () => {
      await locks?.release();
      for (const l of listeners) l.kill();
      for (const s of started) await s.stop();
      started[0]?.cleanup();
      await database?.drop();
      await setLink(fleet.lab, 'h1', true).catch(() => undefined);
      await setLink(fleet.lab, 'h2', true).catch(() => undefined);
    }, T);

    it('when the routes are created, then every target uses g1, in sync, with both gateways healthy', async () => {
      const first = await spawn();
      for (const host of TARGETS) {
        const res = await first.request('POST', '/v1/routes', {
          body: { host, to: SERVICE_NET, via: [g1(), g2()], health_check: ICMP },
        });
        expect(res.status, res.text).toBe(201);
        ids.set(host, res.body.id as string);
      }
      for (const host of TARGETS) {
        await onGateway(fleet.lab, first.request, id(host), host, g1(), 'g1', 60_000);
        await poll(`${host} in sync with both gateways healthy`, async () => {
          const r = await routeOf(first.request, id(host));
          return r.sync.state === 'in_sync' && r.candidates.every((c) => c.health === 'healthy')
            ? r
            : undefined;
        });
      }
    });

    let restartedAt = new Date(0);

    it('when g1 fails while the targets’ locks are held, then the switch to g2 commits with its host work but no kernel follows', async () => {
      const knex = database.db.knex;
      const first = current();
      locks = await holdHostLocks(database.url!, TARGETS);
      const lockedAt = await dbNow(knex);
      const before = new Map<string, number>();
      for (const host of TARGETS) before.set(host, (await hostWork(knex, host)).desired);

      await setLink(fleet.lab, 'h1', false);
      for (const host of TARGETS) {
        const r = await poll(
          `${host} switched to g2 in the API`,
          async () => {
            const x = await routeOf(first.request, id(host));
            return x.active_via === g2() ? x : undefined;
          },
          MOVE_MS,
        );
        expect(r.last_switch).toMatchObject({ from: g1(), to: g2(), reason: 'gateway_failed' });
        expect(await failovers(first.request, id(host))).toHaveLength(1);
      }
      // A moment for anything that would apply it anyway.
      await sleep(3_000);
      for (const host of TARGETS) {
        const row = await knex('routes')
          .where({ id: id(host) })
          .first();
        expect(row).toMatchObject({ via: g2(), sync_state: 'applying' });
        const work = await hostWork(knex, host);
        expect(work.desired).toBeGreaterThan(before.get(host)!);
        expect(work.applied).toBeLessThan(work.desired);
        expect(work.claimedBy).toBeNull();
        expect(await kernelGateways(fleet.lab, host, SERVICE_NET)).toEqual([g1()]);
        expect(await applyRunsSince(knex, lockedAt, host)).toEqual([]);
      }

      await crash(first);
      await locks.release();
      restartedAt = await dbNow(knex);
    });

    it('when a new server starts on the database, then every kernel reaches g2 in one run per host, with one switch event each', async () => {
      const knex = database.db.knex;
      const second = await spawn();
      for (const host of TARGETS) {
        const r = await onGateway(
          fleet.lab,
          second.request,
          id(host),
          host,
          g2(),
          'g2',
          RESTART_MS,
        );
        expect(r.last_switch).toMatchObject({ from: g1(), to: g2(), reason: 'gateway_failed' });
      }
      for (const host of TARGETS) {
        await poll(
          `${host} settled`,
          async () => {
            const w = await hostWork(knex, host);
            return w.attempted === w.desired && w.dueAt === null && w.claimedBy === null
              ? w
              : undefined;
          },
          RESTART_MS,
        );
      }
      // Time for a second run to show, were one owed (a drift repair, a second decision).
      await sleep(5_000);
      for (const host of TARGETS) {
        const r = await routeOf(second.request, id(host));
        expect(r).toMatchObject({ active_via: g2(), sync: { state: 'in_sync' } });
        expect(
          (
            await knex('routes')
              .where({ id: id(host) })
              .first()
          ).via,
        ).toBe(g2());
        expect(await kernelGateways(fleet.lab, host, SERVICE_NET)).toEqual([g2()]);
        expect(await failovers(second.request, id(host))).toHaveLength(1);
        const runs = await applyRunsSince(knex, restartedAt, host);
        expect(runs, `apply runs carrying ${host} since the restart`).toEqual([
          expect.objectContaining({
            status: 'succeeded',
            owner: expect.stringContaining(`:${second.pid}:`),
          }),
        ]);
      }
    });

    it('when g1 comes back and then g2 fails, then the new server moves every route to g1', async () => {
      const second = current();
      await setLink(fleet.lab, 'h1', true);
      for (const host of TARGETS) {
        await poll(
          `${host} sees g1 healthy`,
          async () => {
            const r = await routeOf(second.request, id(host));
            return healthOf(r, g1()) === 'healthy' && healthOf(r, g2()) === 'healthy'
              ? r
              : undefined;
          },
          MOVE_MS,
        );
      }
      await setLink(fleet.lab, 'h2', false);
      for (const host of TARGETS) {
        const r = await onGateway(fleet.lab, second.request, id(host), host, g1(), 'g1');
        expect(r.last_switch).toMatchObject({ from: g2(), to: g1(), reason: 'gateway_failed' });
        expect(r.degraded).toBe(false);
        expect(await failovers(second.request, id(host))).toHaveLength(2);
      }
      await setLink(fleet.lab, 'h2', true);
    });
  },
);

interface Inventory {
  lab: { hosts: Record<string, Record<string, unknown>> };
}

describe(
  'route failover via a firewall-managed gateway (input policy drop), on a lab of 3 hosts',
  { timeout: T },
  () => {
    const fleet = useLab(3);
    const server = useTestServer(() => {
      const inventory = load(readFileSync(fleet.lab.inventoryPath, 'utf8')) as Inventory;
      // g1's firewall is routeplane's from the start: input policy drop, the default.
      inventory.lab.hosts.h1!.routeplane_firewall_managed = true;
      const path = `${fleet.lab.inventoryPath}.managed-gateway.yml`;
      writeFileSync(path, dump(inventory));
      return {
        INVENTORY: path,
        WATCH_HOSTS: 'true',
        FAILOVER_CHECKS: 'true',
        // Confirms are tested in firewall-confirm*.test.ts; here they would only cost time.
        FIREWALL_CONFIRM_S: '0',
      };
    }, T);
    const addr = (h: string) => fleet.lab.hosts.find((x) => x.name === h)!.ipv4;
    const g1 = () => addr('h1');
    const g2 = () => addr('h2');
    const listeners: { kill(): void }[] = [];
    let routeId = '';
    const request: Request = (...args) => server.request(...args);

    beforeAll(async () => {
      listeners.push(await makeGateway(fleet.lab, 'h1', 'g1'));
      listeners.push(await makeGateway(fleet.lab, 'h2', 'g2'));
    }, T);

    afterAll(async () => {
      for (const l of listeners) l.kill();
      await setLink(fleet.lab, 'h1', true).catch(() => undefined);
    });

    it('when g1’s firewall is managed and opens only the service port, then its input policy drops what no rule opens', async () => {
      // The listener stands behind g1's input policy too: one rule opens it, so that a real
      // connection can tell who answers. It accepts nothing the icmp checks need.
      const rule = await server.request('POST', '/v1/firewall/rules', {
        token: 'operator',
        body: {
          host: 'h1',
          chain: 'input',
          protocol: 'tcp',
          dst: [SERVICE],
          dport: [String(SERVICE_PORT)],
          action: 'accept',
        },
      });
      expect(rule.status, rule.text).toBe(201);
      const fw = await poll('h1’s routeplane table, input policy drop', async () => {
        const res = await server.request('GET', '/v1/hosts/h1/firewall?refresh=true');
        return res.status === 200 && res.body.present ? res : undefined;
      });
      expect(fw.body).toMatchObject({ managed: true });
      expect(fw.body.ruleset).toMatch(/hook input priority filter; policy drop;/);
      // h3 is not management: g1’s sshd is behind the policy for it.
      expect(await tcpReachable(findHost(fleet.lab, 'h3'), findHost(fleet.lab, 'h1'), 22)).toBe(
        false,
      );
    });

    it('when a route on h3 via [g1, g2] is checked by icmp, then g1 is healthy within seconds and the route stays on g1, never switched', async () => {
      const res = await server.request('POST', '/v1/routes', {
        // preempt: a route switched away by mistake comes back, so that the steps after this
        // one still start on g1; this step itself fails on any switch.
        body: {
          host: 'h3',
          to: SERVICE_NET,
          via: [g1(), g2()],
          health_check: ICMP,
          preempt: true,
          hold_down_s: 4,
        },
      });
      expect(res.status, res.text).toBe(201);
      routeId = res.body.id as string;
      const story = async () =>
        JSON.stringify(
          (await eventsOf(request, routeId)).filter((e) =>
            ['gateway_health', 'failover'].includes(e.action),
          ),
        );
      // g1's table accepts h3's echo requests only once an apply of g1 follows the route's
      // commit; a check dropped before then must not count as g1 failing.
      await poll(
        'g1 healthy from h3',
        async () => {
          const r = await routeOf(request, routeId);
          return healthOf(r, g1()) === 'healthy' ? r : undefined;
        },
        MOVE_MS,
      ).catch(async (err: unknown) => {
        throw new Error(`${String(err)}; events: ${await story()}`);
      });
      // And it stays there: no check fails behind the policy.
      await sleep(5_000);
      expect(await failovers(request, routeId), `switches: ${await story()}`).toEqual([]);
      const r = await onGateway(fleet.lab, request, routeId, 'h3', g1(), 'g1');
      expect(r).toMatchObject({ degraded: false, last_switch: null });
      expect(healthOf(r, g1())).toBe('healthy');
      expect(healthOf(r, g2())).toBe('healthy');
    });

    it('when g1 loses its link, then the route moves to g2', async () => {
      await onGateway(fleet.lab, request, routeId, 'h3', g1(), 'g1');
      await setLink(fleet.lab, 'h1', false);
      const r = await onGateway(fleet.lab, request, routeId, 'h3', g2(), 'g2');
      expect(r.last_switch).toMatchObject({ from: g1(), to: g2(), reason: 'gateway_failed' });
      expect(healthOf(r, g1())).toBe('unhealthy');
    });

    it('when g1 comes back, then it turns healthy again through its firewall and the route returns to it', async () => {
      await setLink(fleet.lab, 'h1', true);
      await poll(
        'g1 healthy again from h3',
        async () => {
          const r = await routeOf(request, routeId);
          return healthOf(r, g1()) === 'healthy' ? r : undefined;
        },
        MOVE_MS,
      );
      const r = await onGateway(fleet.lab, request, routeId, 'h3', g1(), 'g1');
      expect(r.last_switch).toMatchObject({ from: g2(), to: g1(), reason: 'preempt' });
    });
  },
);
