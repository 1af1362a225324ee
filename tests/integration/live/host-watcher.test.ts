import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { HostState } from '../../../src/hosts/host-state.ts';
import { InventorySource } from '../../../src/hosts/inventory-source.ts';
import type { InventoryHost } from '../../../src/hosts/inventory.ts';
import { nsExec, startSshd, stopSshd } from '../../../src/lab/index.ts';
import { HostWatchers } from '../../../src/live/watch/host-watchers.ts';
import type { WatchStatus } from '../../../src/live/watch/host-watcher.ts';
import { BOOTSTRAP, masterSocketPath } from '../../../src/live/watch/watch-connection.ts';
import { controlPathVar } from '../../../src/runs/ssh-masters.ts';
import { nsCommands, useLab } from '../../helpers/lab.ts';
import { logCapture } from '../../helpers/log-capture.ts';

// Changes show up in well under a second; 10 s is the generous bound of every wait.
const SEEN_WITHIN = { timeout: 10_000, interval: 50 };
const T = 60_000;

function recorder() {
  const states = new Map<string, HostState[]>();
  const statuses = new Map<string, WatchStatus[]>();
  return {
    states,
    statuses,
    onState: (host: string, s: HostState) => states.set(host, [...(states.get(host) ?? []), s]),
    onStatus: (host: string, s: WatchStatus) =>
      statuses.set(host, [...(statuses.get(host) ?? []), s]),
    latest: (host: string) => states.get(host)?.at(-1),
    count: (host: string) => states.get(host)?.length ?? 0,
  };
}

const mainDsts = (s: HostState | undefined) =>
  (s?.routes ?? []).filter((r) => r.table === 'main').map((r) => r.dst);

/** Nothing of the watch left in the namespace: no monitor, no watch script. */
async function watchProcesses(ns: string): Promise<string[]> {
  return (await nsCommands(ns)).filter((c) => /monitor/.test(c) || c.includes(BOOTSTRAP));
}

describe('host watchers, given a lab of 2 hosts with real sshd', { timeout: T }, () => {
  const fleet = useLab(2);
  let hosts: InventoryHost[];
  const rec = recorder();
  const log = logCapture('info');
  let watchers: HostWatchers;
  let h1: InventoryHost;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rp-wm-'));
    const source = new InventorySource({
      inventoryPath: fleet.lab.inventoryPath,
      ansibleInventory: 'ansible-inventory',
      vaultPassword: undefined,
      vaultPasswordFile: undefined,
    });
    hosts = [...(await source.current()).hosts.values()].sort((a, b) =>
      a.name.localeCompare(b.name),
    );
    h1 = hosts[0]!;
    watchers = new HostWatchers({
      logger: log.logger,
      resyncMs: 0,
      // Short, so the reconnect after sshd is back does not wait 30 s.
      backoff: { initialMs: 200, maxMs: 1000 },
      onState: rec.onState,
      onStatus: rec.onStatus,
    });
  }, T);
  afterAll(async () => {
    await watchers?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, T);

  const ns = (host: string) => fleet.lab.hosts.find((h) => h.name === host)!.netns;

  it('when both hosts are watched, then each sends a first state with its links and addresses as the kernel has them', async () => {
    expect(hosts.map((h) => h.name)).toEqual(['h1', 'h2']);
    await watchers.set(hosts);
    for (const h of fleet.lab.hosts) {
      await vi.waitFor(() => expect(rec.count(h.name)).toBeGreaterThan(0), SEEN_WITHIN);
      const state = rec.latest(h.name)!;
      expect(state.links.map((l) => l.ifname).sort()).toEqual(['eth0', 'lo']);
      const addresses = state.addresses.map((a) => `${a.ifname} ${a.address}/${a.prefixlen}`);
      expect(addresses).toContain(`eth0 ${h.ipv4}/${fleet.lab.prefixV4.split('/')[1]}`);
      expect(addresses).toContain(`eth0 ${h.ipv6}/${fleet.lab.prefixV6.split('/')[1]}`);
      const kernel = JSON.parse(
        await nsExec(fleet.lab, h.name, ['ip', '-j', '-4', 'route', 'show', 'table', 'main']),
      ) as unknown[];
      expect(state.routes.filter((r) => r.family === 'inet' && r.table === 'main')).toHaveLength(
        kernel.length,
      );
      expect(watchers.status(h.name)).toMatchObject({ state: 'watching', error: null });
    }
    expect(log.lines.filter((l) => l.event === 'watch.connected')).toHaveLength(2);
  });

  it('when a route is added by hand on h1, then a new state has it within 10 s, and h2 is unaffected', async () => {
    const h2Before = rec.count('h2');
    await nsExec(fleet.lab, 'h1', ['ip', 'route', 'add', '203.0.113.77/32', 'dev', 'eth0']);
    await vi.waitFor(
      () => expect(mainDsts(rec.latest('h1'))).toContain('203.0.113.77/32'),
      SEEN_WITHIN,
    );
    expect(rec.count('h2')).toBe(h2Before);
  });

  it('when an address is added by hand on h2, then a new state has it within 10 s', async () => {
    await nsExec(fleet.lab, 'h2', ['ip', 'addr', 'add', '192.0.2.44/32', 'dev', 'eth0']);
    await vi.waitFor(
      () =>
        expect(rec.latest('h2')!.addresses.map((a) => `${a.address}/${a.prefixlen}`)).toContain(
          '192.0.2.44/32',
        ),
      SEEN_WITHIN,
    );
  });

  it('when routeplane’s nft table appears by hand on h1, then a new state has it within 10 s', async () => {
    await nsExec(fleet.lab, 'h1', ['nft', 'add', 'table', 'inet', 'routeplane']);
    await vi.waitFor(() => {
      const fw = rec.latest('h1')!.firewall;
      expect(fw?.available).toBe(true);
      expect(fw?.table).toEqual([
        { table: { family: 'inet', name: 'routeplane', handle: expect.any(Number) } },
      ]);
      expect(fw?.ruleset).toContain('table inet routeplane');
    }, SEEN_WITHIN);
  });

  it('when nothing changes for 5 s (resync off), then no new state is emitted', async () => {
    // Let the earlier changes' states land first.
    let last = -1;
    await vi.waitFor(
      () => {
        const now = rec.count('h1') + rec.count('h2');
        const quiet = now === last;
        last = now;
        expect(quiet).toBe(true);
      },
      { timeout: 10_000, interval: 1000 },
    );
    const before = [rec.count('h1'), rec.count('h2')];
    await new Promise((resolve) => setTimeout(resolve, 5000));
    expect([rec.count('h1'), rec.count('h2')]).toEqual(before);
  });

  it('when h2’s sshd and sessions are killed, then h2 is unreachable with ssh’s error, and no state claims its routes are gone', async () => {
    const statesBefore = rec.count('h2');
    await stopSshd(fleet.lab, 'h2');
    await vi.waitFor(() => expect(watchers.status('h2')?.state).toBe('unreachable'), SEEN_WITHIN);
    expect(watchers.status('h2')!.error).toMatch(/closed|refused|reset|Connection/i);
    // Retries go on in the background and keep failing; still no state.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(watchers.status('h2')!.state).toBe('unreachable');
    expect(rec.count('h2')).toBe(statesBefore);
    expect(watchers.status('h1')).toMatchObject({ state: 'watching' });
  });

  it('when h2’s sshd is back, then h2 is watching again with a fresh, truthful state', async () => {
    const since = new Date();
    await startSshd(fleet.lab, 'h2');
    await vi.waitFor(() => expect(watchers.status('h2')?.state).toBe('watching'), SEEN_WITHIN);
    await vi.waitFor(
      () => expect(rec.latest('h2')!.collectedAt.getTime()).toBeGreaterThanOrEqual(since.getTime()),
      SEEN_WITHIN,
    );
    const kernel = JSON.parse(
      await nsExec(fleet.lab, 'h2', ['ip', '-j', '-4', 'route', 'show', 'table', 'main']),
    ) as { dst: string }[];
    expect(mainDsts(rec.latest('h2')).filter((d) => !d.includes(':'))).toHaveLength(kernel.length);
    expect(rec.latest('h2')!.addresses.map((a) => a.address)).toContain('192.0.2.44');
    const statuses = rec.statuses.get('h2')!.map((s) => s.state);
    expect(statuses.slice(-2)).toEqual(['unreachable', 'watching']);
  });

  it('after any of it, then no state ever had no links or no routes', () => {
    for (const host of ['h1', 'h2']) {
      for (const s of rec.states.get(host)!) {
        expect(s.links.length).toBeGreaterThan(0);
        expect(s.routes.length).toBeGreaterThan(0);
      }
    }
  });

  it('when the watchers stop, then no monitor or watch script is left in either namespace', async () => {
    for (const h of ['h1', 'h2']) expect(await watchProcesses(ns(h))).not.toEqual([]);
    await watchers.stop();
    for (const h of ['h1', 'h2']) expect(await watchProcesses(ns(h))).toEqual([]);
    expect(log.lines.filter((l) => l.event === 'watch.stopped')).toHaveLength(2);
    // Nothing logged names the key's contents.
    expect(JSON.stringify(log.lines)).not.toContain('PRIVATE KEY');
  });

  it('when an Ansible run leaves a persistent master for h1, then its socket has the name the watcher computes', async () => {
    // As the runner runs Ansible (src/runs/ansible-environment.ts, ansible-runner.ts).
    const result = await execa(
      'ansible',
      [
        '-i',
        fleet.lab.inventoryPath,
        'h1',
        '-m',
        'ping',
        '-e',
        JSON.stringify({ ansible_control_path: controlPathVar(dir) }),
      ],
      {
        reject: false,
        env: {
          ANSIBLE_SSH_ARGS: '-C -o ControlMaster=auto -o ControlPersist=60s',
          ANSIBLE_NOCOLOR: 'True',
          HOME: dir,
          ANSIBLE_LOCAL_TEMP: path.join(dir, 'tmp'),
        },
      },
    );
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    const sockets = (await readdir(dir)).filter((f) => f !== 'tmp' && f !== '.ansible');
    expect(sockets.map((f) => path.join(dir, f))).toEqual([masterSocketPath(dir, h1)]);
  });

  it('when that master is up, then a watcher rides it, and connects directly once it is gone', async () => {
    const socket = masterSocketPath(dir, h1)!;
    const lab = fleet.lab.hosts[0]!;
    expect((await stat(socket)).isSocket()).toBe(true);
    const rec = recorder();
    const log = logCapture('info');
    const viaMaster = new HostWatchers({
      logger: log.logger,
      resyncMs: 0,
      mastersDir: dir,
      backoff: { initialMs: 200, maxMs: 1000 },
      onState: rec.onState,
      onStatus: rec.onStatus,
    });
    try {
      await viaMaster.set([h1]);
      await vi.waitFor(() => expect(rec.count('h1')).toBeGreaterThan(0), SEEN_WITHIN);
      expect(log.lines.find((l) => l.event === 'watch.connected')).toMatchObject({
        via_master: true,
      });
      // The master goes (as when its host leaves the inventory): the session drops, and the
      // watcher comes back without it.
      await execa('ssh', ['-O', 'exit', '-o', `ControlPath=${socket}`, 'x'], { reject: false });
      await vi.waitFor(() => {
        const connected = log.lines.filter((l) => l.event === 'watch.connected');
        expect(connected.at(-1)).toMatchObject({ via_master: false });
      }, SEEN_WITHIN);
      await vi.waitFor(() => expect(viaMaster.status('h1')?.state).toBe('watching'), SEEN_WITHIN);
    } finally {
      await viaMaster.stop();
      await execa('ssh', ['-O', 'exit', '-o', `ControlPath=${socket}`, 'x'], { reject: false });
    }
    expect(await watchProcesses(lab.netns)).toEqual([]);
  });
});
