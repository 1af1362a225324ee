import { mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
  defaultLabRoot,
  findHost,
  labDown,
  labDownStale,
  labUp,
  nsExec,
  startSshd,
  stopSshd,
  type Lab,
} from '../../src/lab/index.ts';
import {
  createTestLab,
  destroyTestLab,
  labLinks,
  labNamespaces,
  nextLabId,
  nsCommands,
  nsPids,
  processesMentioning,
  sshTo,
  useLab,
} from '../helpers/lab.ts';

// ssh handshakes and ansible runs take seconds each; well above vitest's 5 s default
const T = 60_000;

interface IpAddr {
  ifname: string;
  operstate: string;
  addr_info: { family: string; local: string; prefixlen: number; scope: string }[];
}

const globalAddrs = (link: IpAddr) =>
  link.addr_info.filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`);

const FENCE_UTILS = path.resolve(import.meta.dirname, '../../playbooks/module_utils');

/**
 * Takes and lets go of the host's apply fence over ssh, as the apply module does (inside the
 * host's namespace): leaves its `.lock` and `.log` (plus a rotated `.log.1`) in /run/lock.
 */
async function takeFence(lab: Lab, host: string, ip: string) {
  const script = [
    'import sys',
    `sys.path.insert(0, ${JSON.stringify(FENCE_UTILS)})`,
    'import routeplane_fence as f',
    `base = f.fence_base(${JSON.stringify(host)})`,
    'open(base + ".log.1", "a").close()',
    `f.take_fence(None, {"name": ${JSON.stringify(host)}, "epoch": 7})`,
    'print(base)',
  ].join('; ');
  const result = await sshTo(lab, ip, ['python3', '-c', `'${script}'`]);
  expect(result.exitCode, result.stderr).toBe(0);
  const base = result.stdout.trim();
  const inode = (
    await execa('ip', [
      'netns',
      'exec',
      findHost(lab, host).netns,
      'stat',
      '-L',
      '-c',
      '%i',
      '/proc/self/ns/net',
    ])
  ).stdout.trim();
  // The module names the files for the host and the inode of the namespace it runs in.
  expect(base).toBe(`/run/lock/routeplane-${host}-${inode}`);
  expect(
    (await readdir('/run/lock')).filter((n) => n.startsWith(`routeplane-${host}-${inode}.`)).sort(),
  ).toEqual([
    `routeplane-${host}-${inode}.lock`,
    `routeplane-${host}-${inode}.log`,
    `routeplane-${host}-${inode}.log.1`,
  ]);
  return { host, inode, base };
}

async function ansible(args: string[], cwd: string) {
  return execa('ansible', args, { cwd, reject: false, env: { ANSIBLE_NOCOLOR: '1' } });
}

describe('given a lab of 3 hosts', { timeout: T }, () => {
  const fleet = useLab(3);
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'lab-test-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('when each namespace is inspected, then eth0 is up with the host addresses', async () => {
    const { lab } = fleet;
    expect(lab.hosts.map((h) => h.name)).toEqual(['h1', 'h2', 'h3']);
    for (const host of lab.hosts) {
      const [eth0] = JSON.parse(
        await nsExec(lab, host.name, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']),
      ) as IpAddr[];
      expect(eth0?.operstate).toBe('UP');
      expect(globalAddrs(eth0!).sort()).toEqual([`${host.ipv4}/28`, `${host.ipv6}/64`].sort());
    }
  });

  it('when ssh uses the lab key and known_hosts, then each host reports its own eth0', async () => {
    const { lab } = fleet;
    for (const host of lab.hosts) {
      const result = await sshTo(lab, host.ipv4, ['ip', '-j', 'addr', 'show', 'eth0']);
      expect(result.exitCode, result.stderr).toBe(0);
      const [eth0] = JSON.parse(result.stdout) as IpAddr[];
      expect(globalAddrs(eth0!)).toContain(`${host.ipv4}/28`);
    }
    const overV6 = await sshTo(lab, lab.hosts[0]!.ipv6, ['true']);
    expect(overV6.exitCode, overV6.stderr).toBe(0);
  });

  it('when the host key is not in known_hosts, then ssh refuses to connect', async () => {
    const { lab } = fleet;
    const result = await sshTo(
      lab,
      lab.hosts[0]!.ipv4,
      ['true'],
      ['-o', 'UserKnownHostsFile=/dev/null'],
    );
    expect(result.exitCode).toBe(255);
    expect(result.stderr).toMatch(/Host key verification failed/);
  });

  it('when ansible pings the lab group, then all 3 hosts answer pong', async () => {
    const result = await ansible(['-i', fleet.lab.inventoryPath, 'lab', '-m', 'ping', '-o'], work);
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    for (const name of ['h1', 'h2', 'h3'])
      expect(result.stdout).toMatch(new RegExp(`^${name} \\| SUCCESS`, 'm'));
  });

  it('when a playbook runs, then each host runs its tasks inside its own namespace', async () => {
    const playbook = path.join(work, 'whoami.yml');
    await writeFile(
      playbook,
      [
        '- hosts: lab',
        '  gather_facts: false',
        '  tasks:',
        '    - command: ip -j addr show dev eth0',
        '      register: addr',
        '      changed_when: false',
        '    - assert:',
        '        that: [ansible_host in addr.stdout, lab_ipv6 in addr.stdout]',
        '',
      ].join('\n'),
    );
    const result = await execa('ansible-playbook', ['-i', fleet.lab.inventoryPath, playbook], {
      cwd: work,
      reject: false,
      env: { ANSIBLE_NOCOLOR: '1' },
    });
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    const recap = [...result.stdout.matchAll(/^(h\d+)\s+: ok=(\d+) .* failed=(\d+)/gm)];
    expect(recap.map((m) => [m[1], m[2], m[3]])).toEqual([
      ['h1', '2', '0'],
      ['h2', '2', '0'],
      ['h3', '2', '0'],
    ]);
  });

  it('when sshd of h2 is stopped, then h2 is unreachable until it is started again', async () => {
    const { lab } = fleet;
    const h2 = lab.hosts[1]!;
    await stopSshd(lab, 'h2');
    expect(await nsPids(h2.netns)).toEqual([]);
    expect((await sshTo(lab, h2.ipv4, ['true'])).exitCode).toBe(255);
    const ping = await ansible(['-i', lab.inventoryPath, 'lab', '-m', 'ping', '-o'], work);
    expect(ping.stdout).toMatch(/^h2 \| UNREACHABLE/m);
    expect(ping.stdout).toMatch(/^h1 \| SUCCESS/m);

    await startSshd(lab, 'h2');
    expect((await sshTo(lab, h2.ipv4, ['true'])).exitCode).toBe(0);
    const again = await ansible(['-i', lab.inventoryPath, 'h2', '-m', 'ping', '-o'], work);
    expect(again.exitCode, again.stdout).toBe(0);
  });
});

describe('lab lifecycle', { timeout: T }, () => {
  it('when a lab with a lingering ssh session is taken down, then nothing of it remains, and a second down is a no-op', async () => {
    const lab = await labUp({ id: nextLabId(), count: 2 });
    const h1 = lab.hosts[0]!;
    // sshd keeps the session's command running after its client dies
    const client = sshTo(lab, h1.ipv4, ['sleep', '600']);
    const sleeping = async () => (await nsCommands(h1.netns)).filter((c) => c === 'sleep 600');
    for (let i = 0; i < 400 && (await sleeping()).length === 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    client.kill('SIGKILL');
    await client;
    expect(await sleeping()).toHaveLength(1);
    const pids = await nsPids(h1.netns);
    const fences = await Promise.all(lab.hosts.map((h) => takeFence(lab, h.name, h.ipv4)));
    for (const f of fences) {
      expect(await readFile(`${f.base}.log`, 'utf8')).toMatch(/ start 7 \d+\n.* end 7 \d+\n$/);
    }

    await labDown({ id: lab.id });
    for (const f of fences) {
      const left = (await readdir(path.dirname(f.base))).filter((n) =>
        n.startsWith(path.basename(f.base)),
      );
      expect(left, `${f.host}: fence files of inode ${f.inode}`).toEqual([]);
    }
    expect(await labNamespaces(lab.id)).toEqual([]);
    expect(await labLinks(lab.id)).toEqual([]);
    expect(await processesMentioning(lab.dir)).toEqual([]);
    for (const pid of pids) {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      expect(stat === '' || /\) [ZX] /.test(stat), `pid ${pid} still running: ${stat}`).toBe(true);
    }
    await expect(readdir(lab.dir)).rejects.toThrow(/ENOENT/);
    const claim = await readlink(path.join(path.dirname(lab.dir), `slot-${lab.slot}`)).catch(
      () => undefined,
    );
    expect(claim).not.toBe(lab.id);
    await expect(labDown({ id: lab.id })).resolves.toBeUndefined();
  });

  it('when two labs are created concurrently, then they get different slots and prefixes', async () => {
    const [a, b] = await Promise.all([createTestLab(1), createTestLab(1)]);
    try {
      expect(a.slot).not.toBe(b.slot);
      expect(a.prefixV4).not.toBe(b.prefixV4);
      expect(a.prefixV6).not.toBe(b.prefixV6);
      expect(a.hosts[0]!.ipv4).not.toBe(b.hosts[0]!.ipv4);
    } finally {
      await Promise.all([destroyTestLab(a), destroyTestLab(b)]);
    }
  });

  it('when the owner of a lab has died, then labDownStale removes it and leaves live labs alone', async () => {
    const [dead, alive] = await Promise.all([createTestLab(1), createTestLab(1)]);
    try {
      const finished = execa('true');
      const pid = finished.pid!;
      await finished;
      await writeFile(path.join(dead.dir, 'owner.pid'), `${pid}\n`);
      const removed = await labDownStale();
      expect(removed).toContain(dead.id);
      expect(removed).not.toContain(alive.id);
      expect(await labNamespaces(dead.id)).toEqual([]);
      await expect(readdir(dead.dir)).rejects.toThrow(/ENOENT/);
      expect(await labNamespaces(alive.id)).toHaveLength(1);
    } finally {
      await labDown({ id: dead.id });
      await destroyTestLab(alive);
    }
  });

  it('when a namespace named for a lab has no lab directory, then labDownStale removes it', async () => {
    const id = nextLabId();
    await execa('ip', ['netns', 'add', `rp-${id}-h1`]);
    try {
      expect(await labDownStale()).toContain(id);
      expect(await labNamespaces(id)).toEqual([]);
    } finally {
      await labDown({ id });
    }
  });

  it('when setup fails midway, then labUp removes what it had built before rejecting', async () => {
    const id = nextLabId();
    const savedPath = process.env.PATH;
    // ssh-keygen lives in /usr/bin: key generation fails while the network is being built
    process.env.PATH = '/usr/sbin:/sbin';
    try {
      await expect(labUp({ id, count: 2 })).rejects.toThrow(/ssh-keygen/);
    } finally {
      process.env.PATH = savedPath;
    }
    expect(await labNamespaces(id)).toEqual([]);
    expect(await labLinks(id)).toEqual([]);
    await expect(readdir(path.join(defaultLabRoot(), id))).rejects.toThrow(/ENOENT/);
  });

  it('when labUp gets a bad id or host count, then it rejects and creates nothing', async () => {
    await expect(labUp({ id: 'Bad-Id', count: 1 })).rejects.toThrow(/invalid lab id/);
    await expect(labUp({ id: 'toolong7', count: 1 })).rejects.toThrow(/invalid lab id/);
    const id = nextLabId();
    await expect(labUp({ id, count: 14 })).rejects.toThrow(/1\.\.13/);
    await expect(labUp({ id, count: 0 })).rejects.toThrow(/1\.\.13/);
    expect(await labNamespaces(id)).toEqual([]);
  });
});
