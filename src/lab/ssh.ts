import { execa } from 'execa';
import { findHost, type Lab } from './types.ts';

type ClientLab = Pick<Lab, 'knownHostsPath' | 'privateKeyPath'>;

// Host key checking stays on, against the lab's own known_hosts only: the client never reads
// or writes /root/.ssh.
export function sshOptionArgs(lab: ClientLab): string[] {
  return toArgs({
    UserKnownHostsFile: lab.knownHostsPath,
    StrictHostKeyChecking: 'yes',
    IdentitiesOnly: 'yes',
    GlobalKnownHostsFile: '/dev/null',
  });
}

const toArgs = (options: Record<string, string>) =>
  Object.entries(options).flatMap(([key, value]) => ['-o', `${key}=${value}`]);

/** The options above as one string, for ansible_ssh_common_args (paths are whitespace-free). */
export function sshCommonArgs(lab: ClientLab): string {
  return sshOptionArgs(lab).join(' ');
}

/** Full argument list for running `ssh` by hand against a lab host. */
export function sshClientArgs(lab: ClientLab): string[] {
  const batch = toArgs({ BatchMode: 'yes', ConnectTimeout: '5' });
  return ['-i', lab.privateKeyPath, ...sshOptionArgs(lab), ...batch];
}

export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** Run argv on a lab host over ssh as root; returns stdout. */
export async function labSsh(lab: Lab, hostName: string, argv: string[]): Promise<string> {
  const host = findHost(lab, hostName);
  const { stdout } = await execa('ssh', [
    ...sshClientArgs(lab),
    `root@${host.ipv4}`,
    '--',
    argv.map(shellQuote).join(' '),
  ]);
  return stdout;
}
