import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { HostProbers } from '../../../src/failover/probe/host-probers.ts';
import type { ProbeCheck, ProbeResult } from '../../../src/failover/probe/probe-session.ts';
import { InventorySource } from '../../../src/hosts/inventory-source.ts';
import type { InventoryHost } from '../../../src/hosts/inventory.ts';
import { startSshd, stopSshd } from '../../../src/lab/index.ts';
import type { WatchStatus } from '../../../src/live/watch/host-watcher.ts';
import { PROBE_BOOTSTRAP } from '../../../src/live/watch/watch-connection.ts';
import { nsPids, processesMentioning, useLab } from '../../helpers/lab.ts';
import { logCapture } from '../../helpers/log-capture.ts';

const SEEN_WITHIN = { timeout: 10_000, interval: 50 };
const T = 60_000;
const CONTROLLER = '@controller';
const INTERVAL_S = 0.5;

const check = (
  id: string,
  type: 'icmp' | 'tcp',
  target: string,
  port: number | null = null,
): ProbeCheck => ({ id, type, target, port, intervalS: INTERVAL_S, timeoutS: 0.4 });

/** The probe processes of this test process: its ssh clients and local pythons. */
async function ownProbeProcesses(): Promise<number[]> {
  const lines = await processesMentioning(PROBE_BOOTSTRAP);
  const pids = lines.map((l) => Number(l.slice(0, l.indexOf(':'))));
  const parent = async (pid: number) => {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  };
  const own = await Promise.all(pids.map(async (p) => ((await parent(p)) === process.pid ? p : 0)));
  return own.filter((p) => p !== 0);
}

describe('probers, given a lab of 2 hosts with real sshd', { timeout: T }, () => {
  const fleet = useLab(2);
  const log = logCapture('info');
  const results: ProbeResult[] = [];
  const statuses = new Map<string, WatchStatus[]>();
  let probers: HostProbers;
  let h1: InventoryHost;
  let ghost: string;

  const of = (point: string, id: string) => results.filter((r) => r.point === point && r.id === id);
  const ns = (host: string) => fleet.lab.hosts.find((h) => h.name === host)!.netns;
  /** The pids of the probe pythons in a host's namespace (not a shell that started one). */
  const probeScripts = async (host: string) => {
    const pids = await nsPids(ns(host));
    const cmds = await Promise.all(
      pids.map((p) => readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '')),
    );
    return pids.filter(
      (_, i) =>
        cmds[i]!.split('\0')[0]!.includes('python') && cmds[i]!.includes('routeplane-probe'),
    );
  };

  beforeAll(async () => {
    const source = new InventorySource({
      inventoryPath: fleet.lab.inventoryPath,
      ansibleInventory: 'ansible-inventory',
      vaultPassword: undefined,
      vaultPasswordFile: undefined,
    });
    h1 = (await source.current()).hosts.get('h1')!;
    // The last host address of the lab's /28: nobody has it.
    const [net] = fleet.lab.prefixV4.split('/');
    const base = net!.split('.').map(Number);
    ghost = [...base.slice(0, 3), base[3]! + 14].join('.');
    probers = new HostProbers({
      logger: log.logger,
      defaultPython: '/usr/bin/python3',
      backoff: { initialMs: 200, maxMs: 1000 },
      onResult: (r) => results.push(r),
      onStatus: (point, s) => statuses.set(point, [...(statuses.get(point) ?? []), s]),
    });
  }, T);
  afterAll(async () => {
    await probers?.stop();
  }, T);

  it('when h1 probes h2 and the controller probes h1, then each check’s results arrive within a few intervals, every interval', async () => {
    const [lh1, lh2] = fleet.lab.hosts;
    const started = Date.now();
    await probers.set([
      {
        point: 'h1',
        host: h1,
        checks: [
          check('h2-icmp', 'icmp', lh2!.ipv4),
          check('h2-icmp6', 'icmp', lh2!.ipv6),
          check('h2-ssh', 'tcp', lh2!.ipv4, 22),
          check('ghost-icmp', 'icmp', ghost),
        ],
      },
      {
        point: CONTROLLER,
        host: null,
        checks: [check('h1-icmp', 'icmp', lh1!.ipv4), check('h1-ssh', 'tcp', lh1!.ipv4, 22)],
      },
    ]);
    await vi.waitFor(() => {
      for (const id of ['h2-icmp', 'h2-icmp6', 'h2-ssh', 'ghost-icmp']) {
        expect(of('h1', id).length, id).toBeGreaterThanOrEqual(3);
      }
      for (const id of ['h1-icmp', 'h1-ssh']) {
        expect(of(CONTROLLER, id).length, id).toBeGreaterThanOrEqual(3);
      }
    }, SEEN_WITHIN);
    // ssh's login included, the first results come within a few intervals.
    const first = Math.min(...results.map((r) => r.at.getTime()));
    expect(first - started).toBeLessThan(5000);
    for (const id of ['h2-icmp', 'h2-icmp6', 'h2-ssh']) {
      for (const r of of('h1', id)) {
        expect(r, id).toMatchObject({ outcome: 'ok', detail: null, rttMs: expect.any(Number) });
      }
    }
    for (const id of ['h1-icmp', 'h1-ssh']) {
      for (const r of of(CONTROLLER, id)) expect(r, id).toMatchObject({ outcome: 'ok' });
    }
    for (const r of of('h1', 'ghost-icmp')) {
      expect(r).toMatchObject({ outcome: 'fail', detail: 'timeout after 0.4 s', rttMs: null });
    }
    // One round per interval, not more.
    const icmp = of('h1', 'h2-icmp').map((r) => r.at.getTime());
    const span = icmp.at(-1)! - icmp[0]!;
    expect(icmp.length).toBeLessThanOrEqual(Math.floor(span / (INTERVAL_S * 1000)) + 2);
    expect(probers.status('h1')).toMatchObject({ state: 'watching', error: null });
    expect(probers.status(CONTROLLER)).toMatchObject({ state: 'watching', error: null });
    const connected = log.lines.filter((l) => l.event === 'probe.connected');
    expect(connected.map((l) => l.host).sort()).toEqual([CONTROLLER, 'h1']);
    expect(connected.find((l) => l.host === 'h1')).toMatchObject({ kind: 'ssh', icmp4: 'raw' });
    // One prober in h1, in one ssh session.
    expect(await probeScripts('h1')).toHaveLength(1);
  });

  it('when h1’s checks change, then the same prober runs the new set: removed checks stop reporting', async () => {
    const [, lh2] = fleet.lab.hosts;
    const pidsBefore = await probeScripts('h1');
    await probers.set([
      { point: 'h1', host: h1, checks: [check('h2-ssh', 'tcp', lh2!.ipv4, 22)] },
      {
        point: CONTROLLER,
        host: null,
        checks: [check('h1-icmp', 'icmp', fleet.lab.hosts[0]!.ipv4)],
      },
    ]);
    const cut = results.length;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const after = results.slice(cut);
    expect(after.filter((r) => r.point === 'h1').map((r) => r.id)).not.toContain('h2-icmp');
    expect(after.filter((r) => r.point === 'h1' && r.id === 'h2-ssh').length).toBeGreaterThan(0);
    expect(after.filter((r) => r.id === 'h1-ssh')).toEqual([]);
    expect(await probeScripts('h1')).toEqual(pidsBefore);
    expect(log.lines.filter((l) => l.event === 'probe.connected')).toHaveLength(2);
  });

  it('when h1’s sshd and sessions are killed, then h1 is unreachable and nothing is reported for its checks until it is back', async () => {
    await stopSshd(fleet.lab, 'h1');
    await vi.waitFor(() => expect(probers.status('h1')?.state).toBe('unreachable'), SEEN_WITHIN);
    const cut = results.length;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(results.slice(cut).filter((r) => r.point === 'h1')).toEqual([]);
    // The controller's own prober goes on.
    expect(results.slice(cut).filter((r) => r.point === CONTROLLER).length).toBeGreaterThan(0);
    await startSshd(fleet.lab, 'h1');
    await vi.waitFor(() => expect(probers.status('h1')?.state).toBe('watching'), SEEN_WITHIN);
    const back = results.length;
    await vi.waitFor(
      () =>
        expect(
          results.slice(back).filter((r) => r.point === 'h1' && r.id === 'h2-ssh').length,
        ).toBeGreaterThan(0),
      SEEN_WITHIN,
    );
    expect(
      statuses
        .get('h1')!
        .map((s) => s.state)
        .slice(-2),
    ).toEqual(['unreachable', 'watching']);
  });

  it('when the probers stop, then no probe script is left in h1 and no ssh or python of theirs here', async () => {
    expect(await probeScripts('h1')).toHaveLength(1);
    expect((await ownProbeProcesses()).length).toBe(2);
    await probers.stop();
    expect(await probeScripts('h1')).toEqual([]);
    expect(await ownProbeProcesses()).toEqual([]);
    expect(log.lines.filter((l) => l.event === 'probe.stopped')).toHaveLength(2);
    expect(JSON.stringify(log.lines)).not.toContain('PRIVATE KEY');
  });
});
