import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { healthHandlers, readinessProbe } from '../../../src/http/health-handlers.ts';
import { createLogger } from '../../../src/logger.ts';

const DB_SECRET =
  'password authentication failed for user "routeplane" at db.internal:5432 (secret-3f9a)';

function sources(opts: { dbUp?: boolean; ansibleUp?: boolean } = {}) {
  const calls = { ping: 0, version: 0 };
  let clock = 1_000_000;
  const state = { dbUp: opts.dbUp ?? true, ansibleUp: opts.ansibleUp ?? true };
  const probe = readinessProbe({
    backend: 'postgres',
    ping: async () => {
      calls.ping++;
      if (!state.dbUp) throw new Error(DB_SECRET);
    },
    version: async () => {
      calls.version++;
      if (!state.ansibleUp) throw new Error('spawn /opt/secret/ansible-playbook ENOENT');
      return 'ansible-playbook [core 2.14.18]';
    },
    logger: createLogger('silent'),
    now: () => clock,
  });
  return { probe, calls, state, advance: (ms: number) => (clock += ms) };
}

const servers: { close(): void }[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

async function serve(probe: ReturnType<typeof readinessProbe>) {
  const app = express().get('/readyz', healthHandlers(probe).getReadiness);
  const server = await new Promise<import('node:http').Server>((r) => {
    const s = app.listen(0, '127.0.0.1', () => r(s));
  });
  servers.push(server);
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/readyz`;
  return async () => {
    const res = await fetch(url);
    return { status: res.status, text: await res.text() };
  };
}

describe('/readyz', () => {
  it('when everything works, then it is ready with the backend and the ansible version', async () => {
    const get = await serve(sources().probe);
    const res = await get();
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({
      status: 'ready',
      database: { ok: true, backend: 'postgres' },
      ansible: { ok: true, version: 'ansible-playbook [core 2.14.18]' },
    });
  });

  it("when the database fails, then it is not ready and says so without the database's words", async () => {
    const get = await serve(sources({ dbUp: false }).probe);
    const res = await get();
    expect(res.status).toBe(503);
    expect(JSON.parse(res.text)).toEqual({
      status: 'not_ready',
      database: { ok: false, backend: 'postgres', error: 'database unreachable' },
      ansible: { ok: true, version: 'ansible-playbook [core 2.14.18]' },
    });
    expect(res.text).not.toMatch(/secret|routeplane|db\.internal|password/);
  });

  it('when ansible-playbook cannot run, then 100 probes start one process, and a new one only after 30 s', async () => {
    const s = sources({ ansibleUp: false });
    const get = await serve(s.probe);
    const all = await Promise.all(Array.from({ length: 50 }, () => get()));
    for (let i = 0; i < 50; i++) all.push(await get());
    expect(all.every((r) => r.status === 503)).toBe(true);
    expect(JSON.parse(all[0]!.text).ansible).toEqual({
      ok: false,
      error: 'ansible-playbook cannot run',
    });
    expect(all.some((r) => r.text.includes('/opt/secret'))).toBe(false);
    expect(s.calls.version).toBe(1);

    s.advance(29_999);
    await get();
    expect(s.calls.version).toBe(1);
    s.advance(1);
    s.state.ansibleUp = true;
    const back = await get();
    expect(s.calls.version).toBe(2);
    expect(back.status).toBe(200);
  });

  it('when ansible-playbook works, then its version is probed once, however many probes', async () => {
    const s = sources();
    const get = await serve(s.probe);
    await Promise.all(Array.from({ length: 20 }, () => get()));
    s.advance(3_600_000);
    await get();
    expect(s.calls.version).toBe(1);
  });

  it('when probes arrive together, then they share one database ping', async () => {
    const s = sources();
    await Promise.all(Array.from({ length: 20 }, () => s.probe.database()));
    expect(s.calls.ping).toBe(1);
    await s.probe.database();
    expect(s.calls.ping).toBe(2);
  });
});
