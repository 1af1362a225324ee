import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { HostState } from '../../../src/hosts/host-state.ts';
import {
  backoffDelay,
  DEFAULT_BACKOFF,
  HostWatcher,
  type HostWatcherOptions,
  type WatchStatus,
} from '../../../src/live/watch/host-watcher.ts';
import { HostWatchers } from '../../../src/live/watch/host-watchers.ts';
import {
  loadWatchScript,
  watchConnection,
  watchSpawner,
} from '../../../src/live/watch/watch-connection.ts';
import { FakeChild } from '../../helpers/fake-child.ts';
import { logCapture } from '../../helpers/log-capture.ts';

const SCRIPT = 'print("the watch script")\n';

const HELLO = { type: 'hello', pid: 99, python: '3.11.2', monitors: ['ip monitor'] };
const STATE = {
  type: 'state',
  seq: 1,
  links: [
    {
      ifname: 'eth0',
      address: '02:00:00:00:00:02',
      mtu: 1500,
      operstate: 'UP',
      flags: ['UP'],
      addr_info: [{ family: 'inet', local: '198.51.100.2', prefixlen: 28, scope: 'global' }],
    },
  ],
  routes: [
    { family: 'inet', dst: '0.0.0.0/0', gateway: '198.51.100.1', dev: 'eth0', table: 254 },
    { family: 'inet', dst: '10.9.0.0/16', dev: 'eth0', table: 100, protocol: 'static' },
  ],
  firewall: { available: true, table: null, ruleset: 'table inet x {\n}\n', error: null },
};

const SSH_HOST = {
  name: 'h1',
  vars: { ansible_host: '198.51.100.2', ansible_user: 'root' },
  local: false,
};

function harness(over: Partial<HostWatcherOptions> = {}) {
  const children: FakeChild[] = [];
  const spawned: { file: string; args: string[] }[] = [];
  const states: HostState[] = [];
  const statuses: WatchStatus[] = [];
  const log = logCapture();
  const watcher = new HostWatcher({
    host: 'h1',
    connection: watchConnection(SSH_HOST),
    logger: log.logger,
    resyncMs: 0,
    script: async () => SCRIPT,
    onState: (s) => states.push(s),
    onStatus: (s) => statuses.push(s),
    spawn: (file, args) => {
      const child = new FakeChild();
      children.push(child);
      spawned.push({ file, args });
      return child;
    },
    random: () => 0.5,
    ...over,
  });
  const child = async (i: number) => {
    await vi.waitFor(() => expect(children[i]).toBeDefined());
    return children[i]!;
  };
  return { watcher, children, spawned, states, statuses, logs: log.lines, child };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));
/** Lets stream events and promise chains run, without moving (fake) time. */
const settle = async () => {
  for (let i = 0; i < 10; i++) await tick();
};

describe('backoffDelay', () => {
  it('when attempts fail one after the other, then the delay doubles from 1 s to 30 s and stays there', () => {
    const seq = [0, 1, 2, 3, 4, 5, 6, 20].map((a) => backoffDelay(a, DEFAULT_BACKOFF, () => 0.5));
    expect(seq).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it('when jittered, then a delay stays within 20% either way', () => {
    expect(backoffDelay(0, DEFAULT_BACKOFF, () => 0)).toBe(800);
    expect(backoffDelay(0, DEFAULT_BACKOFF, () => 1)).toBe(1200);
    expect(backoffDelay(9, DEFAULT_BACKOFF, () => 1)).toBe(36000);
  });
});

describe('HostWatcher with a fake ssh', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('when started, then ssh gets the inventory’s arguments and the script arrives as one base64 line', async () => {
    const h = harness();
    h.watcher.start();
    const c = await h.child(0);
    expect(h.spawned[0]!.file).toBe('ssh');
    expect(h.spawned[0]!.args).toContain('198.51.100.2');
    await vi.waitFor(() => expect(c.written).toMatch(/\n$/));
    expect(Buffer.from(c.written.trim(), 'base64').toString()).toBe(SCRIPT);
    expect(h.statuses.map((s) => s.state)).toEqual(['connecting']);
    await h.watcher.stop();
  });

  it('when the script says hello and prints a state, then the status is watching and the state arrives as a HostState', async () => {
    const h = harness();
    h.watcher.start();
    const c = await h.child(0);
    c.send(HELLO);
    c.send(STATE);
    await vi.waitFor(() => expect(h.states).toHaveLength(1));
    expect(h.statuses.map((s) => [s.state, s.error])).toEqual([
      ['connecting', null],
      ['watching', null],
    ]);
    const s = h.states[0]!;
    expect(s.runId).toBeNull();
    expect(s.addresses).toEqual([
      { ifname: 'eth0', family: 'inet', address: '198.51.100.2', prefixlen: 28, scope: 'global' },
    ]);
    expect(s.routes.map((r) => `${r.dst} ${r.table}`)).toEqual([
      '0.0.0.0/0 main',
      '10.9.0.0/16 100',
    ]);
    expect(s.firewall).toEqual({
      available: true,
      table: null,
      ruleset: 'table inet x {\n}\n',
      error: null,
    });
    expect(h.logs.find((l) => l.event === 'watch.connected')).toMatchObject({
      host: 'h1',
      destination: 'root@198.51.100.2',
      via_master: false,
    });
    await h.watcher.stop();
  });

  it('when a line is cut short, not JSON, or a state without routes, then no state is emitted and each is logged', async () => {
    const h = harness();
    h.watcher.start();
    const c = await h.child(0);
    c.send(HELLO);
    c.send('{"type":"state","links":[],"rou\n');
    c.send('not json at all\n');
    c.send('[1,2]\n');
    c.send({ type: 'state', links: [] });
    c.send({ ...STATE, routes: 'gone' });
    c.send(JSON.stringify(STATE).slice(0, 100)); // the connection drops mid-line
    c.exit(255, null, 'Connection to 198.51.100.2 closed by remote host.\n');
    await vi.waitFor(() => expect(h.watcher.status.state).toBe('unreachable'));
    expect(h.states).toEqual([]);
    expect(h.logs.filter((l) => l.event === 'watch.bad_line')).toHaveLength(6);
    await h.watcher.stop();
  });

  it('when the host’s re-read fails, then no state is emitted and the status carries the error until a read succeeds', async () => {
    const h = harness();
    h.watcher.start();
    const c = await h.child(0);
    c.send(HELLO);
    c.send({ type: 'error', seq: 1, error: 'ip route show failed: Cannot talk to rtnetlink' });
    await vi.waitFor(() =>
      expect(h.watcher.status).toMatchObject({
        state: 'watching',
        error: 'ip route show failed: Cannot talk to rtnetlink',
      }),
    );
    expect(h.states).toEqual([]);
    c.send(STATE);
    await vi.waitFor(() => expect(h.states).toHaveLength(1));
    expect(h.watcher.status).toMatchObject({ state: 'watching', error: null });
    await h.watcher.stop();
  });

  it('when the connection drops, then the status is unreachable with ssh’s stderr tail and it reconnects after 1 s, 2 s, 4 s, back to 1 s once it was healthy', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const h = harness({ backoff: { healthyMs: 10_000 } });
    h.watcher.start();
    const spawnedAfter = async (ms: number) => {
      await vi.advanceTimersByTimeAsync(ms);
      return h.children.length;
    };
    await settle();
    let c = h.children[0]!;
    c.send(HELLO);
    await settle();
    expect(h.watcher.status.state).toBe('watching');
    c.exit(255, null, 'debug noise\nssh: connect to host 198.51.100.2 port 22: No route to host\n');
    await settle();
    expect(h.watcher.status.state).toBe('unreachable');
    expect(h.watcher.status.error).toContain('port 22: No route to host');
    expect(await spawnedAfter(999)).toBe(1);
    expect(await spawnedAfter(1)).toBe(2);
    h.children[1]!.exit(
      255,
      null,
      'ssh: connect to host 198.51.100.2 port 22: Connection refused\n',
    );
    await settle();
    expect(h.watcher.status.error).toContain('Connection refused');
    expect(await spawnedAfter(1999)).toBe(2);
    expect(await spawnedAfter(1)).toBe(3);
    h.children[2]!.exit(255);
    await settle();
    expect(h.watcher.status.error).toBe('exited with code 255');
    expect(await spawnedAfter(3999)).toBe(3);
    expect(await spawnedAfter(1)).toBe(4);
    c = h.children[3]!;
    c.send(HELLO);
    await settle();
    expect(h.watcher.status).toMatchObject({ state: 'watching', error: null });
    await vi.advanceTimersByTimeAsync(10_000); // healthy: the sequence starts over
    c.exit(255, null, 'Timeout, server 198.51.100.2 not responding.\n');
    await settle();
    expect(h.watcher.status.state).toBe('unreachable');
    expect(await spawnedAfter(999)).toBe(4);
    expect(await spawnedAfter(1)).toBe(5);
    // Retries while unreachable do not flap the status through "connecting".
    expect(h.statuses.map((s) => s.state)).toEqual([
      'connecting',
      'watching',
      'unreachable',
      'unreachable',
      'unreachable',
      'watching',
      'unreachable',
    ]);
    await h.watcher.stop();
  });

  it('when the script does not say hello in time, then the attempt is ended and counts as a failure', async () => {
    const h = harness({ connectTimeoutMs: 50 });
    h.watcher.start();
    const c = await h.child(0);
    await vi.waitFor(() => expect(c.signals).toEqual(['SIGTERM']));
    await vi.waitFor(() =>
      expect(h.watcher.status).toMatchObject({
        state: 'unreachable',
        error: 'the watch script did not start within 50 ms',
      }),
    );
    await h.watcher.stop();
  });

  it('when resync is on, then "resync" is written every resyncMs once the script runs, and never before its hello', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const h = harness({ resyncMs: 1000 });
    h.watcher.start();
    await settle();
    const c = h.children[0]!;
    await vi.advanceTimersByTimeAsync(2500);
    expect(c.written.split('\n').filter(Boolean)).toHaveLength(1);
    c.send(HELLO);
    await settle();
    expect(h.watcher.status.state).toBe('watching');
    await vi.advanceTimersByTimeAsync(2000);
    expect(c.written.split('\n').slice(1)).toEqual(['resync', 'resync', '']);
    await h.watcher.stop();
  });

  it('when stop() is called, then stdin is closed, the child exits and nothing more is reported', async () => {
    const h = harness();
    h.watcher.start();
    const c = await h.child(0);
    c.send(HELLO);
    await vi.waitFor(() => expect(h.watcher.status.state).toBe('watching'));
    await h.watcher.stop();
    expect(c.stdinEnded).toBe(true);
    expect(c.signals).toEqual([]);
    const before = h.statuses.length;
    await tick();
    expect(h.statuses).toHaveLength(before);
    expect(h.children).toHaveLength(1);
    expect(h.logs.some((l) => l.event === 'watch.stopped')).toBe(true);
  });

  it('when the child ignores the end of stdin, then stop() sends SIGTERM, then SIGKILL, to it and waits', async () => {
    const children: FakeChild[] = [];
    const h = harness({
      stopGraceMs: 20,
      spawn: () => {
        const c = new FakeChild({ exitOnStdinEnd: false, exitOnTerm: false });
        children.push(c);
        return c;
      },
    });
    h.watcher.start();
    await vi.waitFor(() => expect(children).toHaveLength(1));
    await h.watcher.stop();
    expect(children[0]!.signals).toEqual(['SIGTERM', 'SIGKILL']);
  });

  it('when the host is not watched, then its status says why and nothing is spawned', async () => {
    const h = harness({
      connection: watchConnection({ ...SSH_HOST, vars: { ansible_connection: 'docker' } }),
    });
    h.watcher.start();
    await tick();
    expect(h.statuses).toEqual([
      {
        state: 'not_watched',
        error: 'ansible_connection "docker" is not ssh or local',
        since: expect.any(Date),
      },
    ]);
    expect(h.children).toEqual([]);
    await h.watcher.stop();
  });
});

describe('HostWatchers with a fake ssh', () => {
  const inv = (name: string, vars: Record<string, unknown>) => ({
    name,
    groups: [],
    vars,
    local: false,
    localReason: null,
  });

  it('when the host list changes, then new hosts start, gone hosts stop, changed settings restart and unchanged ones are left alone', async () => {
    const spawned: { host: string; child: FakeChild }[] = [];
    const statuses: [string, WatchStatus][] = [];
    const watchers = new HostWatchers({
      logger: logCapture().logger,
      resyncMs: 0,
      onState: () => undefined,
      onStatus: (host, s) => statuses.push([host, s]),
      spawn: (_file, args) => {
        const child = new FakeChild();
        spawned.push({ host: args.at(-2)!, child });
        child.send(HELLO);
        return child;
      },
    });
    const h1 = inv('h1', { ansible_host: '198.51.100.2' });
    const h2 = inv('h2', { ansible_host: '198.51.100.3' });
    const h3 = inv('h3', { ansible_connection: 'docker' });
    await watchers.set([h1, h2, h3]);
    await vi.waitFor(() =>
      expect(spawned.map((s) => s.host)).toEqual(['198.51.100.2', '198.51.100.3']),
    );
    await vi.waitFor(() => expect(watchers.status('h1')?.state).toBe('watching'));
    expect(watchers.status('h3')).toMatchObject({ state: 'not_watched' });
    expect(watchers.hosts()).toEqual(['h1', 'h2', 'h3']);

    await watchers.set([{ ...h1, vars: { ...h1.vars } }, h3]);
    expect(spawned[1]!.child.stdinEnded).toBe(true);
    expect(spawned[0]!.child.stdinEnded).toBe(false);
    expect(watchers.status('h2')).toBeUndefined();

    await watchers.set([inv('h1', { ansible_host: '198.51.100.9' }), h3]);
    expect(spawned[0]!.child.stdinEnded).toBe(true);
    await vi.waitFor(() => expect(spawned.map((s) => s.host)).toHaveLength(3));
    expect(spawned[2]!.host).toBe('198.51.100.9');

    await watchers.stop();
    expect(spawned[2]!.child.stdinEnded).toBe(true);
    expect(watchers.hosts()).toEqual([]);
    await watchers.set([h1]);
    expect(spawned).toHaveLength(3);
  });
});

// The real remote-watch.py, run here (a local host) with fake `ip` and `nft` first on PATH.
const FAKE_IP = `#!/bin/sh
dir=$(dirname "$0")
case "$*" in
  "-4 monitor route")
    echo $$ > "$dir/monitor.pid"
    while [ ! -e "$dir/burst" ]; do sleep 0.02; done
    i=0
    while [ $i -lt 1000 ]; do echo "10.0.$i.0/24 dev eth0 proto static"; i=$((i+1)); done
    exec sleep 600 ;;
  "monitor link address"|"-6 monitor route") exec sleep 600 ;;
  "-j addr show") echo addr >> "$dir/reads"; cat "$dir/links.json" ;;
  "-j -4 route show table all") echo routes4 >> "$dir/reads"; cat "$dir/routes4.json" ;;
  "-j -6 route show table all") echo '[]' ;;
  *) echo "fake ip: $*" >&2; exit 2 ;;
esac
`;
// A host where nft fails (no permission): never the end of the watch.
const FAKE_NFT = `#!/bin/sh
echo "Error: Operation not permitted" >&2
exit 1
`;

describe('HostWatcher running remote-watch.py locally', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rp-watch-'));
    await writeFile(path.join(dir, 'ip'), FAKE_IP);
    await writeFile(path.join(dir, 'nft'), FAKE_NFT);
    await chmod(path.join(dir, 'ip'), 0o755);
    await chmod(path.join(dir, 'nft'), 0o755);
    await writeFile(path.join(dir, 'links.json'), JSON.stringify(STATE.links));
    await writeFile(
      path.join(dir, 'routes4.json'),
      JSON.stringify([
        { dst: 'default', gateway: '198.51.100.1', dev: 'eth0' },
        { dst: '192.0.2.5', dev: 'eth0', table: 'main', protocol: 'static' },
        { dst: '10.9.0.0/16', dev: 'eth0', table: '100' },
      ]),
    );
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function localWatcher(over: Partial<HostWatcherOptions> = {}) {
    const states: HostState[] = [];
    const log = logCapture();
    const watcher = new HostWatcher({
      host: 'local',
      connection: watchConnection(
        { name: 'local', vars: { ansible_connection: 'local' }, local: true },
        { defaultPython: '/usr/bin/python3' },
      ),
      logger: log.logger,
      resyncMs: 0,
      script: () => loadWatchScript(),
      onState: (s) => states.push(s),
      onStatus: () => undefined,
      spawn: watchSpawner({ PATH: `${dir}:/usr/bin:/bin` }),
      ...over,
    });
    return { watcher, states, logs: log.lines };
  }

  it('when 1,000 route changes come in a burst, then they cost one re-read of the IPv4 routes only and one state, normalised as routeplane_state does', async () => {
    const w = localWatcher();
    w.watcher.start();
    await vi.waitFor(() => expect(w.states).toHaveLength(1), { timeout: 10_000 });
    expect(w.states[0]!.routes.map((r) => `${r.dst} ${r.table}`)).toEqual([
      '0.0.0.0/0 main',
      '192.0.2.5/32 main',
      '10.9.0.0/16 100',
    ]);
    // nft fails on this host: reported, and the watch goes on.
    expect(w.states[0]!.firewall).toEqual({
      available: true,
      table: null,
      ruleset: null,
      error: 'Error: Operation not permitted',
    });
    await writeFile(path.join(dir, 'burst'), '');
    await vi.waitFor(() => expect(w.states).toHaveLength(2), { timeout: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(w.states).toHaveLength(2);
    const reads = (await readFile(path.join(dir, 'reads'), 'utf8')).trim().split('\n');
    // The first read is whole; the burst re-reads what its monitor covers, nothing else.
    expect(reads).toEqual(['addr', 'routes4', 'routes4']);
    expect(w.states[1]!.links).toEqual(w.states[0]!.links);

    const monitor = Number(await readFile(path.join(dir, 'monitor.pid'), 'utf8'));
    expect(existsSync(`/proc/${monitor}`)).toBe(true);
    await w.watcher.stop();
    // Stopping closed the script's stdin: it ended its monitors before it exited.
    expect(existsSync(`/proc/${monitor}`)).toBe(false);
  });

  it('when a re-read fails (ip prints no JSON), then no state is emitted and the status says why', async () => {
    await writeFile(path.join(dir, 'links.json'), '[{"ifname": "eth0", "addr_');
    const w = localWatcher();
    w.watcher.start();
    await vi.waitFor(
      () => expect(w.watcher.status.error).toMatch(/^ip addr show printed no JSON/),
      {
        timeout: 10_000,
      },
    );
    expect(w.watcher.status.state).toBe('watching');
    expect(w.states).toEqual([]);
    await w.watcher.stop();
  });
});
