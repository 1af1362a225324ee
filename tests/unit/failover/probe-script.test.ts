import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { PROBE_BOOTSTRAP } from '../../../src/live/watch/watch-connection.ts';

const SCRIPT = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../playbooks/probe/routeplane_probe.py',
);
// The system's: a per-user python (pyenv's shims) is not one another user may run.
const SYSTEM_PYTHON = '/usr/bin/python3';
const SEEN = { timeout: 10_000, interval: 20 };

type Msg = Record<string, unknown>;
const isHello = (m: Msg) => m.type === 'hello';

interface Probe {
  child: ChildProcessWithoutNullStreams;
  messages: Msg[];
  stderr: () => string;
  exited: Promise<number | null>;
  send(line: unknown): void;
  results(id: string): Msg[];
  /** Waits for the next message matching, after `from` (an index into messages). */
  next(match: (m: Msg) => boolean, from?: number): Promise<Msg>;
}

const running: ChildProcessWithoutNullStreams[] = [];

function startProbe(argv: string[] = ['python3', '-u', SCRIPT], firstLine?: string): Probe {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  running.push(child);
  const messages: Msg[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout }).on('line', (l) => messages.push(JSON.parse(l) as Msg));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  if (firstLine !== undefined) child.stdin.write(`${firstLine}\n`);
  const probe: Probe = {
    child,
    messages,
    stderr: () => stderr,
    exited,
    send: (line) =>
      child.stdin.write(`${typeof line === 'string' ? line : JSON.stringify(line)}\n`),
    results: (id) => messages.filter((m) => m.type === 'result' && m.id === id),
    next: async (match, from = 0) => {
      let found: Msg | undefined;
      await vi.waitFor(() => {
        found = messages.slice(from).find(match);
        expect(found, `stderr: ${stderr}`).toBeDefined();
      }, SEEN);
      return found!;
    },
  };
  return probe;
}

/**
 * The script as routeplane starts it: the bootstrap, then the source as one base64 line; and
 * as routeplane does, nothing more is written before its hello (the bootstrap's buffered
 * readline could swallow it).
 */
async function startBootstrapped(prefix: string[]): Promise<Probe & { hello: Msg }> {
  const source = Buffer.from(await readFile(SCRIPT, 'utf8')).toString('base64');
  const p = startProbe([...prefix, SYSTEM_PYTHON, '-u', '-c', PROBE_BOOTSTRAP], source);
  return { ...p, hello: await p.next(isHello) };
}

const icmp = (id: string, target: string, interval = 0.2, timeout = 0.2) => ({
  id,
  type: 'icmp',
  target,
  interval,
  timeout,
});
const tcp = (id: string, target: string, port: number, interval = 0.2, timeout = 0.2) => ({
  id,
  type: 'tcp',
  target,
  port,
  interval,
  timeout,
});
const accepted = (m: Msg) => m.type === 'checks';
const resultOf = (id: string) => (m: Msg) => m.type === 'result' && m.id === id;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

afterEach(() => {
  for (const c of running.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

const isRoot = process.getuid?.() === 0;

describe('routeplane_probe.py run as root', () => {
  let server: net.Server;
  let openPort: number;
  let closedPort: number;
  beforeAll(async () => {
    server = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    openPort = (server.address() as net.AddressInfo).port;
    // A port just freed: nothing listens there.
    const tmp = net.createServer();
    await new Promise<void>((resolve) => tmp.listen(0, '127.0.0.1', resolve));
    closedPort = (tmp.address() as net.AddressInfo).port;
    await new Promise((resolve) => tmp.close(resolve));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it.runIf(isRoot)(
    'when started, then hello says it opened raw ICMP sockets of both families',
    async () => {
      const p = startProbe();
      const hello = await p.next(isHello);
      expect(hello).toMatchObject({
        pid: p.child.pid,
        python: expect.stringMatching(/^3\./),
        icmp4: 'raw',
        icmp6: 'raw',
        icmp4_error: null,
        icmp6_error: null,
      });
    },
  );

  it.runIf(isRoot)(
    'when 127.0.0.1 and ::1 are pinged, then each gets ok results with a round-trip time, every interval',
    async () => {
      const p = startProbe();
      p.send({ checks: [icmp('v4', '127.0.0.1'), icmp('v6', '::1')] });
      await p.next(accepted);
      await vi.waitFor(() => {
        expect(p.results('v4').length).toBeGreaterThanOrEqual(3);
        expect(p.results('v6').length).toBeGreaterThanOrEqual(3);
      }, SEEN);
      for (const r of [...p.results('v4'), ...p.results('v6')]) {
        expect(r).toEqual({ type: 'result', id: r.id, ok: true, rtt_ms: expect.any(Number) });
        expect(r.rtt_ms as number).toBeGreaterThanOrEqual(0);
        expect(r.rtt_ms as number).toBeLessThan(200);
      }
    },
  );

  it('when a tcp port listens, then the check is ok; a closed port gives "connection refused"', async () => {
    const p = startProbe();
    p.send({
      checks: [tcp('open', '127.0.0.1', openPort), tcp('closed', '127.0.0.1', closedPort)],
    });
    expect(await p.next(resultOf('open'))).toEqual({
      type: 'result',
      id: 'open',
      ok: true,
      rtt_ms: expect.any(Number),
    });
    expect(await p.next(resultOf('closed'))).toEqual({
      type: 'result',
      id: 'closed',
      ok: false,
      error: 'connection refused',
    });
  });

  it('when a new set replaces the old one, then removed checks stop, new ones run at once and unchanged ones keep their schedule', async () => {
    const p = startProbe();
    p.send({
      checks: [tcp('old', '127.0.0.1', openPort), tcp('kept', '127.0.0.1', openPort, 5, 1)],
    });
    await p.next(resultOf('kept'));
    await vi.waitFor(() => expect(p.results('old').length).toBeGreaterThanOrEqual(2), SEEN);
    p.send({
      checks: [tcp('kept', '127.0.0.1', openPort, 5, 1), tcp('new', '127.0.0.1', openPort)],
    });
    const acks = () => p.messages.filter(accepted).length;
    await vi.waitFor(() => expect(acks()).toBe(2), SEEN);
    const cut = p.messages.length - 1 - [...p.messages].reverse().findIndex(accepted);
    await p.next(resultOf('new'), cut);
    await sleep(800);
    const after = p.messages.slice(cut);
    expect(after.filter(resultOf('old'))).toEqual([]);
    expect(after.filter(resultOf('new')).length).toBeGreaterThanOrEqual(2);
    // Its next round is 5 s after the first: the new set did not start it over.
    expect(p.results('kept')).toHaveLength(1);
    expect(p.messages.filter((m) => m.type === 'checks')).toEqual([
      { type: 'checks', count: 2 },
      { type: 'checks', count: 2 },
    ]);
  });

  it('when a line is bad, then an error names the problem and the previous set keeps running', async () => {
    const p = startProbe();
    p.send({ checks: [tcp('t', '127.0.0.1', openPort)] });
    await p.next(accepted);
    const bad: [unknown, RegExp][] = [
      ['not json', /^not JSON/],
      [[1, 2], /"checks" only/],
      [{ checks: [], extra: 1 }, /"checks" only/],
      [{ checks: 'x' }, /not a list/],
      [{ checks: [{ ...icmp('a', 'gateway.example') }] }, /target "gateway.example" is not an IP/],
      [{ checks: [{ ...icmp('a', '10.0.0.1'), type: 'udp' }] }, /type must be icmp or tcp/],
      [{ checks: [tcp('a', '10.0.0.1', 0)] }, /port must be an integer 1..65535/],
      [{ checks: [tcp('a', '10.0.0.1', 70000)] }, /port must be/],
      [{ checks: [{ ...tcp('a', '10.0.0.1', 22), port: true }] }, /port must be/],
      [{ checks: [{ ...icmp('a', '10.0.0.1'), port: 22 }] }, /icmp check has no port/],
      [{ checks: [icmp('a', '10.0.0.1', 0.1, 0.1)] }, /interval must be a number >= 0.2/],
      [{ checks: [icmp('a', '10.0.0.1', 1, 2)] }, /timeout must be a number > 0 and <= interval/],
      [{ checks: [icmp('a', '10.0.0.1', 1, 0)] }, /timeout must be/],
      [{ checks: [icmp('a', '10.0.0.1'), icmp('a', '10.0.0.2')] }, /duplicate id/],
      [{ checks: [{ ...icmp('', '10.0.0.1') }] }, /id must be a string/],
      [{ checks: [{ ...icmp('a', '10.0.0.1'), extra: 1 }] }, /unknown field extra/],
      [{ checks: [{ ...icmp('a', '10.0.0.1%eth0') }] }, /only an IPv6 link-local/],
    ];
    for (const [line, error] of bad) {
      const from = p.messages.length;
      p.send(line);
      const m = await p.next((x) => x.type === 'error', from);
      expect(m.error).toMatch(error);
    }
    p.send('');
    p.send('   ');
    const from = p.messages.length;
    await p.next(resultOf('t'), from);
    await sleep(300);
    expect(p.messages.filter((m) => m.type === 'error')).toHaveLength(bad.length);
    expect(p.messages.filter(accepted)).toHaveLength(1);
  });

  it('when stdin ends, then it exits with code 0, probes in flight or not', async () => {
    const p = startProbe();
    await p.next(isHello);
    p.send({ checks: [tcp('t', '127.0.0.1', openPort), icmp('i', '127.0.0.1')] });
    await p.next(resultOf('t'));
    p.child.stdin.end();
    expect(await p.exited).toBe(0);
    expect(p.stderr()).toBe('');
  });
});

// Namespaces of this file, so the kernel's answers (no route, no neighbour, who may open an
// ICMP socket) are the test's own, whatever the machine's network.
const NS = `rpt-probe-${process.pid}`;
const nsTools = isRoot && (await execa('setpriv', ['--version'], { reject: false })).exitCode === 0;

describe.runIf(nsTools)('routeplane_probe.py in network namespaces of its own', () => {
  const made: string[] = [];
  async function namespace(suffix: string, pingGroups: string): Promise<string> {
    const ns = `${NS}-${suffix}`;
    await execa('ip', ['netns', 'add', ns]);
    made.push(ns);
    await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await execa('ip', [
      'netns',
      'exec',
      ns,
      'sysctl',
      '-q',
      '-w',
      `net.ipv4.ping_group_range=${pingGroups}`,
    ]);
    return ns;
  }
  const asNobody = (ns: string) => [
    'ip',
    'netns',
    'exec',
    ns,
    'setpriv',
    '--reuid=65534',
    '--regid=65534',
    '--clear-groups',
  ];
  afterAll(async () => {
    for (const c of running.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
    for (const ns of made) await execa('ip', ['netns', 'del', ns], { reject: false });
  });

  it('when a neighbour never answers, then icmp and tcp fail with a timeout; with no route, icmp fails at once with "network unreachable"', async () => {
    const ns = await namespace('root', '1 0');
    // 10.77.0.9 has a neighbour entry but nobody: what is sent there is dropped by the peer.
    const ip = (...args: string[]) => execa('ip', ['-n', ns, ...args]);
    await ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    await ip('addr', 'add', '10.77.0.1/24', 'dev', 'v0');
    await ip('link', 'set', 'v0', 'up');
    await ip('link', 'set', 'v1', 'up');
    await ip(
      'neigh',
      'add',
      '10.77.0.9',
      'lladdr',
      '02:00:00:00:77:09',
      'dev',
      'v0',
      'nud',
      'permanent',
    );
    const p = await startBootstrapped(['ip', 'netns', 'exec', ns]);
    expect(p.hello).toMatchObject({ icmp4: 'raw' });
    p.send({
      checks: [
        icmp('silent', '10.77.0.9', 0.5, 0.3),
        tcp('silent-tcp', '10.77.0.9', 22, 0.5, 0.3),
        icmp('noroute', '203.0.113.9', 0.5, 0.3),
      ],
    });
    expect(await p.next(resultOf('silent'))).toEqual({
      type: 'result',
      id: 'silent',
      ok: false,
      error: 'timeout after 0.3 s',
    });
    expect(await p.next(resultOf('silent-tcp'))).toMatchObject({
      ok: false,
      error: 'timeout after 0.3 s',
    });
    expect(await p.next(resultOf('noroute'))).toMatchObject({
      ok: false,
      error: 'network unreachable',
    });
  });

  it('when a router answers with destination unreachable, then the probe fails at once with the reason and the router’s address', async () => {
    const ns = await namespace('prober', '1 0');
    const router = await namespace('router', '1 0');
    await execa('ip', [
      '-n',
      ns,
      'link',
      'add',
      'r0',
      'type',
      'veth',
      'peer',
      'name',
      'r1',
      'netns',
      router,
    ]);
    const inNs =
      (n: string) =>
      (...args: string[]) =>
        execa('ip', ['-n', n, ...args]);
    const [a, r] = [inNs(ns), inNs(router)];
    await a('addr', 'add', '10.78.0.1/24', 'dev', 'r0');
    await a('addr', 'add', '2001:db8:78::1/64', 'dev', 'r0', 'nodad');
    await a('link', 'set', 'r0', 'up');
    await a('route', 'add', '10.99.0.0/16', 'via', '10.78.0.2');
    await a('route', 'add', '2001:db8:99::/48', 'via', '2001:db8:78::2');
    await r('addr', 'add', '10.78.0.2/24', 'dev', 'r1');
    await r('addr', 'add', '2001:db8:78::2/64', 'dev', 'r1', 'nodad');
    await r('link', 'set', 'r1', 'up');
    await r('route', 'add', 'prohibit', '10.99.0.0/16');
    await r('route', 'add', 'prohibit', '2001:db8:99::/48');
    await execa('ip', [
      'netns',
      'exec',
      router,
      'sysctl',
      '-q',
      '-w',
      'net.ipv4.ip_forward=1',
      'net.ipv6.conf.all.forwarding=1',
    ]);
    const p = await startBootstrapped(['ip', 'netns', 'exec', ns]);
    p.send({ checks: [icmp('v4', '10.99.0.5', 5, 3), icmp('v6', '2001:db8:99::5', 5, 3)] });
    expect(await p.next(resultOf('v4'))).toEqual({
      type: 'result',
      id: 'v4',
      ok: false,
      error: 'administratively prohibited (from 10.78.0.2)',
    });
    expect(await p.next(resultOf('v6'))).toEqual({
      type: 'result',
      id: 'v6',
      ok: false,
      error: 'administratively prohibited (from 2001:db8:78::2)',
    });
  });

  it('when an unprivileged user may open ICMP datagram sockets (ping_group_range), then they are used and 127.0.0.1 answers', async () => {
    const ns = await namespace('dgram', '0 2147483647');
    const p = await startBootstrapped(asNobody(ns));
    expect(p.hello).toMatchObject({
      icmp4: 'dgram',
      icmp6: 'dgram',
      icmp4_error: null,
    });
    p.send({ checks: [icmp('v4', '127.0.0.1'), icmp('v6', '::1')] });
    await vi.waitFor(() => {
      expect(p.results('v4').length).toBeGreaterThanOrEqual(2);
      expect(p.results('v6').length).toBeGreaterThanOrEqual(2);
    }, SEEN);
    for (const r of [...p.results('v4'), ...p.results('v6')]) expect(r).toMatchObject({ ok: true });
  });

  it('when an unprivileged user may open no ICMP socket at all, then icmp checks are unavailable (never failed) and tcp checks still run', async () => {
    const ns = await namespace('none', '1 0');
    const p = await startBootstrapped(asNobody(ns));
    const hello = p.hello;
    expect(hello).toMatchObject({ icmp4: null, icmp6: null });
    expect(hello.icmp4_error).toMatch(/raw needs root.*Operation not permitted/);
    expect(hello.icmp4_error).toMatch(/ping_group_range/);
    p.send({ checks: [icmp('v4', '127.0.0.1'), tcp('t', '127.0.0.1', 9)] });
    await vi.waitFor(() => expect(p.results('v4').length).toBeGreaterThanOrEqual(2), SEEN);
    for (const r of p.results('v4')) {
      expect(r).toEqual({ type: 'result', id: 'v4', unavailable: hello.icmp4_error });
    }
    expect(await p.next(resultOf('t'))).toMatchObject({ ok: false, error: 'connection refused' });
  });
});
