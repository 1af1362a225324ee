import { existsSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HostProbers } from '../../../src/failover/probe/host-probers.ts';
import { loadProbeScript, probeConnection } from '../../../src/failover/probe/probe-connection.ts';
import {
  probeCheckProblem,
  ProbeSession,
  type ProbeCheck,
  type ProbeResult,
  type ProbeSessionOptions,
} from '../../../src/failover/probe/probe-session.ts';
import type { InventoryHost } from '../../../src/hosts/inventory.ts';
import type { WatchStatus } from '../../../src/live/watch/host-watcher.ts';
import {
  BOOTSTRAP,
  PROBE_BOOTSTRAP,
  watchConnection,
  watchSpawner,
} from '../../../src/live/watch/watch-connection.ts';
import { FakeChild } from '../../helpers/fake-child.ts';
import { logCapture } from '../../helpers/log-capture.ts';

const SCRIPT = 'print("the probe script")\n';

const HELLO = {
  type: 'hello',
  pid: 7,
  python: '3.11.2',
  icmp4: 'raw',
  icmp6: null,
  icmp4_error: null,
  icmp6_error: 'no ICMP socket: ...',
};

const icmp = (id: string, target = '198.51.100.3'): ProbeCheck => ({
  id,
  type: 'icmp',
  target,
  port: null,
  intervalS: 2,
  timeoutS: 1,
});
const tcp = (id: string, port = 22, target = '198.51.100.4'): ProbeCheck => ({
  id,
  type: 'tcp',
  target,
  port,
  intervalS: 2,
  timeoutS: 1,
});

const AT = new Date('2030-01-02T03:04:05Z');

function harness(over: Partial<ProbeSessionOptions> = {}) {
  const children: FakeChild[] = [];
  const spawned: { file: string; args: string[] }[] = [];
  const results: ProbeResult[] = [];
  const statuses: WatchStatus[] = [];
  const log = logCapture();
  const session = new ProbeSession({
    point: 'h1',
    connection: probeConnection({
      name: 'h1',
      vars: { ansible_host: '198.51.100.2', ansible_user: 'root' },
      local: false,
    }),
    logger: log.logger,
    script: async () => SCRIPT,
    onResult: (r) => results.push(r),
    onStatus: (s) => statuses.push(s),
    spawn: (file, args) => {
      const child = new FakeChild();
      children.push(child);
      spawned.push({ file, args });
      return child;
    },
    random: () => 0.5,
    now: () => AT,
    ...over,
  });
  const child = async (i: number) => {
    await vi.waitFor(() => expect(children[i]).toBeDefined());
    return children[i]!;
  };
  return { session, children, spawned, results, statuses, logs: log.lines, child };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));
const settle = async () => {
  for (let i = 0; i < 10; i++) await tick();
};

describe('probeConnection', () => {
  it('when the point is the controller (no host), then the prober is a local python with the probe bootstrap', () => {
    expect(probeConnection(null, { defaultPython: '/usr/bin/python3' })).toEqual({
      watched: true,
      target: {
        kind: 'local',
        file: '/usr/bin/python3',
        args: ['-u', '-c', PROBE_BOOTSTRAP],
        python: '/usr/bin/python3',
        destination: 'local',
        masterSocket: null,
      },
    });
  });

  it('when the point is an ssh host, then the prober rides the watcher’s connection and master, with its own bootstrap', () => {
    const host = {
      name: 'h1',
      vars: { ansible_host: '198.51.100.2', ansible_port: 2222 },
      local: false,
    };
    const probe = probeConnection(host, { mastersDir: '/run/masters' });
    const watch = watchConnection(host, { mastersDir: '/run/masters' });
    if (!probe.watched || !watch.watched) throw new Error('expected both watched');
    expect(probe.target.masterSocket).toBe(watch.target.masterSocket);
    expect(probe.target.args.slice(0, -1)).toEqual(watch.target.args.slice(0, -1));
    expect(probe.target.args.at(-1)).toBe(`/usr/bin/python3 -u -c '${PROBE_BOOTSTRAP}'`);
    expect(PROBE_BOOTSTRAP).toBe(BOOTSTRAP.replace('routeplane-watch', 'routeplane-probe'));
  });

  it('when the watcher cannot reach a host, then neither can the prober, for the same reason', () => {
    const host = { name: 'h3', vars: { ansible_connection: 'docker' }, local: false };
    expect(probeConnection(host)).toEqual(watchConnection(host));
  });
});

describe('probeCheckProblem', () => {
  it('when a check is what the script accepts, then there is no problem; else the problem is named', () => {
    expect(probeCheckProblem(icmp('a'))).toBeNull();
    expect(probeCheckProblem(tcp('a'))).toBeNull();
    expect(probeCheckProblem(icmp('a', '2001:db8::1'))).toBeNull();
    expect(probeCheckProblem({ ...icmp('a'), intervalS: 0.2, timeoutS: 0.2 })).toBeNull();
    expect(probeCheckProblem({ ...icmp('a'), target: 'gw.example' })).toMatch(/not an IP/);
    expect(probeCheckProblem({ ...icmp('a'), port: 22 })).toMatch(/no port/);
    expect(probeCheckProblem(tcp('a', 0))).toMatch(/port/);
    expect(probeCheckProblem({ ...tcp('a'), port: null })).toMatch(/port/);
    expect(probeCheckProblem({ ...icmp('a'), intervalS: 0.1, timeoutS: 0.1 })).toMatch(/interval/);
    expect(probeCheckProblem({ ...icmp('a'), timeoutS: 3 })).toMatch(/timeout/);
    expect(probeCheckProblem({ ...icmp('a'), timeoutS: 0 })).toMatch(/timeout/);
    expect(probeCheckProblem({ ...icmp('a'), id: '' })).toMatch(/id/);
  });
});

describe('ProbeSession with a fake ssh', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('when started, then nothing but the script is written before hello, and the check set right after it', async () => {
    const h = harness();
    h.session.setChecks([icmp('c1'), tcp('c2')]);
    h.session.start();
    const c = await h.child(0);
    expect(h.spawned[0]!.args.at(-1)).toContain(PROBE_BOOTSTRAP);
    await vi.waitFor(() => expect(c.written).toMatch(/\n$/));
    expect(Buffer.from(c.written.trim(), 'base64').toString()).toBe(SCRIPT);
    await settle();
    expect(c.lines).toEqual([]);
    c.send(HELLO);
    await vi.waitFor(() => expect(c.lines).toHaveLength(1));
    expect(c.lines[0]).toEqual({
      checks: [
        { id: 'c1', type: 'icmp', target: '198.51.100.3', interval: 2, timeout: 1 },
        { id: 'c2', type: 'tcp', target: '198.51.100.4', port: 22, interval: 2, timeout: 1 },
      ],
    });
    expect(h.session.status).toMatchObject({ state: 'watching', error: null });
    expect(h.logs.find((l) => l.event === 'probe.connected')).toMatchObject({
      host: 'h1',
      destination: 'root@198.51.100.2',
      icmp4: 'raw',
      icmp6: null,
      icmp6_error: 'no ICMP socket: ...',
    });
    expect(h.logs.some((l) => String(l.event).startsWith('watch.'))).toBe(false);
    await h.session.stop();
    expect(h.logs.some((l) => l.event === 'probe.stopped')).toBe(true);
  });

  it('when the checks change while it runs, then the new set is written once; the same set again writes nothing', async () => {
    const h = harness();
    h.session.setChecks([icmp('c1')]);
    h.session.start();
    const c = await h.child(0);
    c.send(HELLO);
    await vi.waitFor(() => expect(c.lines).toHaveLength(1));
    h.session.setChecks([icmp('c1'), icmp('c3', '198.51.100.5')]);
    h.session.setChecks([icmp('c1'), icmp('c3', '198.51.100.5')]);
    await settle();
    expect(c.lines).toHaveLength(2);
    expect((c.lines[1] as { checks: { id: string }[] }).checks.map((x) => x.id)).toEqual([
      'c1',
      'c3',
    ]);
    await h.session.stop();
  });

  it('when results arrive, then each becomes a ProbeResult of the point; unknown ids and incomplete lines are dropped', async () => {
    const h = harness();
    h.session.setChecks([icmp('c1'), tcp('c2'), icmp('c3', '2001:db8::1')]);
    h.session.start();
    const c = await h.child(0);
    c.send(HELLO);
    c.send({ type: 'result', id: 'c1', ok: true, rtt_ms: 0.42 });
    c.send({ type: 'result', id: 'c2', ok: false, error: 'connection refused' });
    c.send({ type: 'result', id: 'c3', unavailable: 'no ICMP socket: ...' });
    c.send({ type: 'result', id: 'gone', ok: true, rtt_ms: 1 });
    c.send({ type: 'result', id: 'c1' });
    c.send({ type: 'result', id: 'c2', ok: false, error: 'timeout after 1.0 s' });
    await vi.waitFor(() => expect(h.results).toHaveLength(4));
    const base = { point: 'h1', at: AT };
    expect(h.results).toEqual([
      { ...base, id: 'c1', outcome: 'ok', detail: null, rttMs: 0.42 },
      { ...base, id: 'c2', outcome: 'fail', detail: 'connection refused', rttMs: null },
      { ...base, id: 'c3', outcome: 'unavailable', detail: 'no ICMP socket: ...', rttMs: null },
      { ...base, id: 'c2', outcome: 'fail', detail: 'timeout after 1.0 s', rttMs: null },
    ]);
    expect(h.logs.filter((l) => l.event === 'probe.bad_line')).toHaveLength(1);
    // A check removed: its results still on their way are not reported.
    h.session.setChecks([icmp('c1')]);
    c.send({ type: 'result', id: 'c2', ok: true, rtt_ms: 1 });
    await settle();
    expect(h.results).toHaveLength(4);
    await h.session.stop();
  });

  it('when the connection drops, then the status is unreachable, nothing is reported for the checks, and the reconnected prober gets the latest set', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const h = harness();
    h.session.setChecks([icmp('c1')]);
    h.session.start();
    await settle();
    const first = h.children[0]!;
    first.send(HELLO);
    await settle();
    first.exit(255, null, 'Connection to 198.51.100.2 closed by remote host.\n');
    await settle();
    expect(h.session.status).toMatchObject({
      state: 'unreachable',
      error: 'Connection to 198.51.100.2 closed by remote host.',
    });
    h.session.setChecks([icmp('c1'), tcp('c2')]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.children).toHaveLength(2);
    const second = h.children[1]!;
    await settle();
    expect(second.lines).toEqual([]);
    second.send(HELLO);
    await settle();
    expect(second.lines).toHaveLength(1);
    expect((second.lines[0] as { checks: unknown[] }).checks).toHaveLength(2);
    expect(h.results).toEqual([]);
    expect(h.statuses.map((s) => s.state)).toEqual([
      'connecting',
      'watching',
      'unreachable',
      'watching',
    ]);
    expect(h.logs.filter((l) => l.event === 'probe.disconnected')).toHaveLength(1);
    await h.session.stop();
  });

  it('when the script refuses the set, then the status carries why until a set is accepted', async () => {
    const h = harness();
    h.session.start();
    const c = await h.child(0);
    c.send(HELLO);
    c.send({ type: 'error', error: 'check "x": port must be an integer 1..65535' });
    await vi.waitFor(() =>
      expect(h.session.status).toMatchObject({
        state: 'watching',
        error: 'check set refused: check "x": port must be an integer 1..65535',
      }),
    );
    expect(h.logs.some((l) => l.event === 'probe.checks_refused')).toBe(true);
    c.send({ type: 'checks', count: 0 });
    await vi.waitFor(() =>
      expect(h.session.status).toMatchObject({ state: 'watching', error: null }),
    );
    await h.session.stop();
  });

  it('when some checks are invalid, then they are left out and logged, and the others are sent', async () => {
    const h = harness();
    h.session.setChecks([
      icmp('ok'),
      { ...icmp('fast'), intervalS: 0.1, timeoutS: 0.05 },
      icmp('ok', '198.51.100.9'),
      { ...tcp('noport'), port: null },
    ]);
    h.session.start();
    const c = await h.child(0);
    c.send(HELLO);
    await vi.waitFor(() => expect(c.lines).toHaveLength(1));
    expect((c.lines[0] as { checks: { id: string; target: string }[] }).checks).toEqual([
      expect.objectContaining({ id: 'ok', target: '198.51.100.3' }),
    ]);
    expect(
      h.logs.filter((l) => l.event === 'probe.bad_check').map((l) => [l.check, l.error]),
    ).toEqual([
      ['fast', 'interval must be at least 0.2 s'],
      ['ok', 'duplicate id'],
      ['noport', 'port must be an integer 1..65535'],
    ]);
    await h.session.stop();
  });

  it('when the script does not say hello in time, then the error names the probe script', async () => {
    const h = harness({ connectTimeoutMs: 50 });
    h.session.start();
    await vi.waitFor(() =>
      expect(h.session.status).toMatchObject({
        state: 'unreachable',
        error: 'the probe script did not start within 50 ms',
      }),
    );
    await h.session.stop();
  });
});

describe('HostProbers with a fake ssh', () => {
  const inv = (name: string, vars: Record<string, unknown>): InventoryHost => ({
    name,
    groups: [],
    vars,
    local: false,
    localReason: null,
  });

  it('when the points change, then new points start, gone ones stop, changed settings restart, and a checks change is only a new set', async () => {
    const spawned: { who: string; child: FakeChild }[] = [];
    const statuses: [string, WatchStatus][] = [];
    const results: ProbeResult[] = [];
    const probers = new HostProbers({
      logger: logCapture().logger,
      defaultPython: '/usr/bin/python3',
      onResult: (r) => results.push(r),
      onStatus: (point, s) => statuses.push([point, s]),
      spawn: (file, args) => {
        const child = new FakeChild();
        spawned.push({ who: file === 'ssh' ? args.at(-2)! : 'local', child });
        child.send(HELLO);
        return child;
      },
    });
    const h1 = inv('h1', { ansible_host: '198.51.100.2' });
    const h3 = inv('h3', { ansible_connection: 'docker' });
    await probers.set([
      { point: 'h1', host: h1, checks: [icmp('a')] },
      { point: '@controller', host: null, checks: [tcp('b')] },
      { point: 'h3', host: h3, checks: [icmp('c')] },
    ]);
    await vi.waitFor(() =>
      expect(spawned.map((s) => s.who).sort()).toEqual(['198.51.100.2', 'local']),
    );
    await vi.waitFor(() => expect(probers.status('h1')?.state).toBe('watching'));
    expect(probers.status('h3')).toMatchObject({ state: 'not_watched' });
    expect(probers.points()).toEqual(['@controller', 'h1', 'h3']);
    const local = spawned.find((s) => s.who === 'local')!.child;
    const remote = spawned.find((s) => s.who !== 'local')!.child;
    await vi.waitFor(() => expect(local.lines).toHaveLength(1));

    local.send({ type: 'result', id: 'b', ok: true, rtt_ms: 3 });
    await vi.waitFor(() => expect(results).toHaveLength(1));
    expect(results[0]).toMatchObject({ point: '@controller', id: 'b', outcome: 'ok' });

    // Only the checks changed: same process, a new set.
    await probers.set([
      { point: 'h1', host: { ...h1, vars: { ...h1.vars } }, checks: [icmp('a'), icmp('d')] },
      { point: '@controller', host: null, checks: [tcp('b')] },
    ]);
    await vi.waitFor(() => expect(remote.lines).toHaveLength(2));
    expect(remote.stdinEnded).toBe(false);
    expect(local.lines).toHaveLength(1);
    expect(probers.status('h3')).toBeUndefined();

    // h1's connection changed: the old prober ends before the new one starts.
    await probers.set([
      { point: 'h1', host: inv('h1', { ansible_host: '198.51.100.9' }), checks: [icmp('a')] },
    ]);
    expect(remote.stdinEnded).toBe(true);
    expect(local.stdinEnded).toBe(true);
    await vi.waitFor(() => expect(spawned).toHaveLength(3));
    expect(spawned[2]!.who).toBe('198.51.100.9');

    await probers.stop();
    expect(spawned[2]!.child.stdinEnded).toBe(true);
    expect(probers.points()).toEqual([]);
    await probers.set([{ point: 'h1', host: h1, checks: [] }]);
    expect(spawned).toHaveLength(3);
    expect(statuses.some(([p, s]) => p === 'h3' && s.state === 'not_watched')).toBe(true);
  });
});

describe('ProbeSession running routeplane_probe.py locally', () => {
  it('when the controller probes a listening port, then ok results arrive, and stop() ends the process', async () => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const results: ProbeResult[] = [];
    const session = new ProbeSession({
      point: '@controller',
      connection: probeConnection(null, { defaultPython: '/usr/bin/python3' }),
      logger: logCapture().logger,
      script: () => loadProbeScript(),
      onResult: (r) => results.push(r),
      onStatus: () => undefined,
      spawn: watchSpawner(),
    });
    try {
      session.setChecks([{ ...tcp('t', port, '127.0.0.1'), intervalS: 0.2, timeoutS: 0.2 }]);
      session.start();
      await vi.waitFor(() => expect(results.length).toBeGreaterThanOrEqual(2), {
        timeout: 10_000,
      });
      expect(results[0]).toMatchObject({ point: '@controller', id: 't', outcome: 'ok' });
      expect(results[0]!.rttMs).toEqual(expect.any(Number));
      const pid = session.pid!;
      expect(existsSync(`/proc/${pid}`)).toBe(true);
      await session.stop();
      expect(existsSync(`/proc/${pid}`)).toBe(false);
    } finally {
      await session.stop();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
