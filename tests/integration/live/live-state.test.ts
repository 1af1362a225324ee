import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsExec, startSshd, stopSshd } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import { kernelHas, kernelLacks } from '../../helpers/routes.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import {
  everyMessage,
  messageSchema,
  openSocket,
  type Message,
  type TestSocket,
} from '../../helpers/ws-client.ts';

// Real watchers over real SSH: every bound is generous (10 s); the real figures are benches.
const T = 120_000;
const SEEN = 10_000;

/** A topic's objects as a client holds them: its full, then every diff applied in order. */
function view(s: TestSocket, topic: string): Record<string, Message> {
  const objects: Record<string, Message> = {};
  for (const m of s.received) {
    if (m.topic !== topic) continue;
    if (m.type === 'full') {
      for (const k of Object.keys(objects)) delete objects[k];
      Object.assign(objects, m.objects);
    } else if (m.type === 'diff') {
      Object.assign(objects, m.added, m.changed);
      for (const k of m.removed) delete objects[k];
    }
  }
  return objects;
}

async function until<T>(fn: () => T | undefined | false, ms = SEEN): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const routeKey = (dst: string) => `route/inet/main/${dst}/0`;

describe('live state of a lab of 2 watched hosts', { timeout: T }, () => {
  const fleet = useLab(2);
  let server: TestServer;
  let s: TestSocket;

  beforeAll(async () => {
    server = await startTestServer({
      INVENTORY: fleet.lab.inventoryPath,
      WATCH_HOSTS: 'true',
      STATE_RESYNC_S: '3600',
    });
    s = await openSocket(server.url, { token: 'viewer' });
    s.send({ type: 'subscribe', topics: ['hosts/*', 'routes'] });
    await until(() => view(s, 'hosts/h1')['link/eth0'] && view(s, 'hosts/h2')['link/eth0']);
  }, T);

  afterAll(async () => {
    await startSshd(fleet.lab, 'h2');
    await s?.close();
    await server?.close();
  }, T);

  it('shows each host watched, with its interfaces and addresses', async () => {
    for (const h of fleet.lab.hosts) {
      const host = await until(() => {
        const o = view(s, `hosts/${h.name}`).host;
        return o?.watch?.state === 'watching' && o;
      });
      expect(host).toMatchObject({ name: h.name, reachable: true });
      const addresses = Object.values(view(s, `hosts/${h.name}`))
        .filter((o) => 'prefixlen' in o)
        .map((a) => a.address);
      expect(addresses).toContain(h.ipv4);
    }
  });

  it('sends a route added by hand in a namespace as a diff, marked unmanaged', async () => {
    const from = s.received.length;
    await nsExec(fleet.lab, 'h1', ['ip', 'route', 'add', '203.0.113.91/32', 'dev', 'eth0']);
    const diff = await s.next(
      (m) => m.type === 'diff' && m.topic === 'hosts/h1' && routeKey('203.0.113.91/32') in m.added,
      SEEN,
      from,
    );
    expect(diff.added[routeKey('203.0.113.91/32')]).toMatchObject({ managed: false, dev: 'eth0' });
  });

  it('sends an address added by hand as a diff', async () => {
    const from = s.received.length;
    await nsExec(fleet.lab, 'h2', ['ip', 'addr', 'add', '192.0.2.45/32', 'dev', 'eth0']);
    const diff = await s.next(
      (m) => m.type === 'diff' && m.topic === 'hosts/h2' && 'address/eth0/192.0.2.45/32' in m.added,
      SEEN,
      from,
    );
    expect(diff.seq).toBeGreaterThan(0);
  });

  it('sends nothing but heartbeats while nothing changes for 5 s', async () => {
    const from = s.received.length;
    await new Promise((r) => setTimeout(r, 5_000));
    expect(s.received.slice(from)).toEqual([]);
  });

  it('shows a route added through the API in the kernel view as managed, and in sync', async () => {
    const res = await server.request('POST', '/v1/routes', {
      body: { host: 'h1', to: '203.0.113.92/32', dev: 'eth0' },
      token: 'operator',
    });
    expect(res.status, res.text).toBe(201);
    const id = res.body.id as string;
    await until(() => view(s, 'hosts/h1')[routeKey('203.0.113.92/32')]?.managed === true);
    await until(() => view(s, 'routes')[id]?.sync?.state === 'in_sync');
  });

  it('streams a run’s progress: its tasks and each host’s result, replayable from seq 0', async () => {
    const res = await server.request('POST', '/v1/routes', {
      body: { host: 'h1', to: '203.0.113.96/32', dev: 'eth0' },
      token: 'operator',
    });
    expect(res.status, res.text).toBe(201);
    const runId = res.body.sync.run_id as string;
    const r = await openSocket(server.url, { token: 'viewer' });
    r.send({ type: 'subscribe', topics: [`runs/${runId}`], since: { [`runs/${runId}`]: 0 } });
    await r.next((m) => m.type === 'resumed');
    // The host's result may reach the topic just after the replay (its write is coalesced).
    await r.next((m) => m.type === 'event' && m.event.kind === 'host_result');
    const events = r.received.filter((m) => m.type === 'event').map((m) => m.event);
    expect(events).toContainEqual(expect.objectContaining({ kind: 'task_started' }));
    expect(events).toContainEqual(
      expect.objectContaining({ kind: 'host_result', host: 'h1', status: expect.any(String) }),
    );
    // The run's end reaches its topic with the next flush, if the replay did not hold it yet.
    await r.next((m) => m.type === 'diff' && m.changed?.run?.status === 'succeeded');
    const run = Object.assign(
      {},
      ...r.received.filter((m) => m.type === 'diff').map((m) => ({ ...m.added, ...m.changed })),
    );
    expect(run.run).toMatchObject({ id: runId, status: 'succeeded' });
    expect(run['host/h1']).toMatchObject({ host: 'h1', failed: 0, unreachable: 0 });
    await r.close();
  });

  it('reports a managed route deleted by hand as drifted, and repairs it (REPAIR_DRIFT)', async () => {
    const res = await server.request('POST', '/v1/routes', {
      body: { host: 'h2', to: '203.0.113.93/32', dev: 'eth0' },
      token: 'operator',
    });
    expect(res.status, res.text).toBe(201);
    const id = res.body.id as string;
    const key = { to: '203.0.113.93/32' };
    await kernelHas(fleet.lab, 'h2', key);
    const from = s.received.length;
    await nsExec(fleet.lab, 'h2', ['ip', 'route', 'del', '203.0.113.93/32', 'proto', '147']);
    await s.next(
      (m) =>
        m.type === 'diff' && m.topic === 'routes' && m.changed?.[id]?.sync?.state === 'drifted',
      SEEN,
      from,
    );
    await kernelHas(fleet.lab, 'h2', key);
    await until(() => view(s, 'routes')[id]?.sync?.state === 'in_sync', 30_000);
    const events = await server.request('GET', `/v1/routes/${id}/events`);
    expect(events.body.items.map((e: Message) => e.action)).toEqual(
      expect.arrayContaining(['drift_detected', 'drift_repaired']),
    );
  });

  it('reports a firewall rule whose table was deleted by hand as drifted, and puts the table back', async () => {
    s.send({ type: 'subscribe', topics: ['firewall'] });
    const res = await server.request('POST', '/v1/firewall/rules', {
      body: { host: 'h1', chain: 'input', protocol: 'tcp', dport: ['8443'], action: 'accept' },
      token: 'operator',
    });
    expect(res.status, res.text).toBe(201);
    const id = res.body.id as string;
    await until(() => view(s, 'firewall')[id]?.sync?.state === 'in_sync');
    await until(() => view(s, 'hosts/h1').firewall?.rules === 1);
    const from = s.received.length;
    await nsExec(fleet.lab, 'h1', ['nft', 'delete', 'table', 'inet', 'routeplane']);
    await s.next(
      (m) =>
        m.type === 'diff' && m.topic === 'firewall' && m.changed?.[id]?.sync?.state === 'drifted',
      SEEN,
      from,
    );
    await until(() => view(s, 'firewall')[id]?.sync?.state === 'in_sync', 30_000);
    const table = await nsExec(fleet.lab, 'h1', ['nft', 'list', 'table', 'inet', 'routeplane']);
    expect(table).toContain(`rp:${id}`);
  });

  it('shows a host whose sshd stops as unreachable, without reporting its routes removed', async () => {
    const before = Object.keys(view(s, 'hosts/h2')).filter((k) => k.startsWith('route/'));
    const from = s.received.length;
    await stopSshd(fleet.lab, 'h2');
    await until(() => view(s, 'hosts/h2').host?.watch?.state === 'unreachable', 20_000);
    expect(view(s, 'hosts/h2').host?.reachable).toBe(false);
    const removed = s.received
      .slice(from)
      .filter((m) => m.topic === 'hosts/h2' && m.type === 'diff')
      .flatMap((m) => m.removed as string[]);
    expect(removed.filter((k) => k.startsWith('route/'))).toEqual([]);
    expect(Object.keys(view(s, 'hosts/h2')).filter((k) => k.startsWith('route/'))).toEqual(before);
  });

  it('resumes the stream with the truth once the host is back', async () => {
    await nsExec(fleet.lab, 'h2', ['ip', 'route', 'add', '203.0.113.94/32', 'dev', 'eth0']);
    await startSshd(fleet.lab, 'h2');
    await until(() => view(s, 'hosts/h2').host?.watch?.state === 'watching', 30_000);
    await until(() => view(s, 'hosts/h2')[routeKey('203.0.113.94/32')]);
    expect(view(s, 'hosts/h2').host?.reachable).toBe(true);
  });
});

describe('the messages of live state', () => {
  it('are all described by docs/ws-messages.schema.json', async () => {
    const validate = await messageSchema('ServerMessage');
    expect(new Set(everyMessage.map((m) => m.type))).toEqual(
      new Set(['full', 'diff', 'event', 'resumed']),
    );
    for (const m of everyMessage) expect(validate(m), JSON.stringify(validate.errors)).toBe(true);
  });
});

describe('drift on a lab host with REPAIR_DRIFT=false', { timeout: T }, () => {
  const fleet = useLab(1);
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({
      INVENTORY: fleet.lab.inventoryPath,
      WATCH_HOSTS: 'true',
      REPAIR_DRIFT: 'false',
    });
  }, T);
  afterAll(async () => server?.close(), T);

  it('only reports a managed route deleted by hand: drifted, and not back in the kernel', async () => {
    const res = await server.request('POST', '/v1/routes', {
      body: { host: 'h1', to: '203.0.113.95/32', dev: 'eth0' },
    });
    expect(res.status, res.text).toBe(201);
    const id = res.body.id as string;
    const key = { to: '203.0.113.95/32' };
    await kernelHas(fleet.lab, 'h1', key);
    await nsExec(fleet.lab, 'h1', ['ip', 'route', 'del', '203.0.113.95/32', 'proto', '147']);
    const end = Date.now() + SEEN;
    let route = (await server.request('GET', `/v1/routes/${id}`)).body as Message;
    while (route.sync.state !== 'drifted' && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      route = (await server.request('GET', `/v1/routes/${id}`)).body as Message;
    }
    expect(route.sync).toMatchObject({ state: 'drifted', error: expect.stringMatching(/missing/) });
    await kernelLacks(fleet.lab, 'h1', key, 3_000);
  });
});
