import { mkdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { execa } from 'execa';
import { hostPaths, labPaths } from './paths.ts';
import { isAlive, killNamespaceProcs, nsPids, sleep } from './procs.ts';
import { findHost, type Lab, type LabHost } from './types.ts';

const SSHD = '/usr/sbin/sshd'; // sshd re-execs itself and insists on an absolute path
const START_TIMEOUT_MS = 10_000;

export function sshdConfig(lab: Lab, host: LabHost): string {
  const p = hostPaths(lab.dir, host.name);
  return [
    `# routeplane lab ${lab.id}, host ${host.name} (namespace ${host.netns}); generated`,
    'Port 22',
    `ListenAddress ${host.ipv4}`,
    `ListenAddress ${host.ipv6}`,
    `HostKey ${p.hostKey}`,
    `PidFile ${p.pidFile}`,
    `AuthorizedKeysFile ${labPaths(lab.dir).publicKey}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    // the lab dir may sit under world-writable /tmp, which StrictModes would refuse
    'StrictModes no',
    'UseDNS no',
    // The namespaces share the controller's filesystem: with root's own HOME every session's
    // shell would run the controller's ~/.bashrc (bash reads it for ssh commands), which on
    // some machines starts pyenv, 0.5 s per command. A lab host is a bare host: its own HOME.
    `SetEnv HOME=${p.dir}`,
    'PrintMotd no',
    'PrintLastLog no',
    'X11Forwarding no',
    // ansible opens many sessions and connections at once (forks, ControlPersist)
    'MaxSessions 50',
    'MaxStartups 100',
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n');
}

async function canConnect(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port, timeout: 500 });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

async function logTail(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-5).join('\n') || '(empty sshd log)';
}

async function runningPid(host: LabHost): Promise<number | undefined> {
  const pid = Number((await readFile(host.sshdPidFile, 'utf8').catch(() => '')).trim());
  if (!(await isAlive(pid))) return undefined;
  // a stale pid file could name an unrelated process that reused the pid
  return (await nsPids(host.netns)).includes(pid) ? pid : undefined;
}

/** Start the host's sshd (no-op if running) and wait until it accepts TCP connections. */
export async function startSshd(lab: Lab, hostName: string): Promise<void> {
  const host = findHost(lab, hostName);
  if (await runningPid(host)) return;
  const p = hostPaths(lab.dir, host.name);
  // sshd's privilege-separation dir; the one thing it needs outside the lab dir
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  // sshd daemonizes: the command returns once the daemon has forked, before it listens.
  const result = await execa(
    'ip',
    ['netns', 'exec', host.netns, SSHD, '-f', p.config, '-E', p.log],
    {
      reject: false,
      stdin: 'ignore',
    },
  );
  if (result.exitCode !== 0) {
    throw new Error(
      `sshd for ${lab.id}/${host.name} failed (${result.exitCode}): ${await logTail(p.log)}`,
    );
  }
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (const address of [host.ipv4, host.ipv6]) {
    while (!(await canConnect(address, 22))) {
      if (Date.now() > deadline) {
        throw new Error(
          `sshd for ${lab.id}/${host.name} not accepting on ${address}:22 after ${START_TIMEOUT_MS} ms: ${await logTail(p.log)}`,
        );
      }
      await sleep(20);
    }
  }
}

/**
 * Make the host unreachable over ssh. Kills every process in the namespace, not just the
 * listener: established sessions (e.g. ansible's ControlPersist masters) are separate sshd
 * processes that would otherwise keep the host reachable.
 */
export async function stopSshd(lab: Lab, hostName: string): Promise<void> {
  const host = findHost(lab, hostName);
  await killNamespaceProcs(host.netns);
  await rm(host.sshdPidFile, { force: true });
}
