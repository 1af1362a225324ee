import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logger.ts';
import { closeSshMasters, exitSshMaster } from './process-reaper.ts';

/** The variables that decide where and how ssh connects; a change to any means a new master. */
export const CONNECTION_VARS = [
  'ansible_host',
  'ansible_ssh_host',
  'ansible_port',
  'ansible_ssh_port',
  'ansible_user',
  'ansible_ssh_user',
  'ansible_private_key_file',
  'ansible_ssh_private_key_file',
  'ansible_ssh_args',
  'ansible_ssh_common_args',
  'ansible_ssh_extra_args',
  'ansible_ssh_executable',
];

const SOCKET_NAME = /^([0-9a-f]{12})-[0-9a-f]{16}$/;

/** The first part of a host's socket name: the same digest Jinja's `hash('sha1')` gives. */
export function hostKey(inventoryName: string): string {
  return createHash('sha1').update(inventoryName, 'utf8').digest('hex').slice(0, 12);
}

/**
 * The `ansible_control_path` a run passes as an extra var: `<dir>/<host key>-<digest of the
 * host's connection settings as Ansible resolves them>`. Ansible templates it per host, so a
 * changed address, port, user, key or ssh argument (even one set by a template) names a new
 * socket and never reuses a master made for the old one. Short: ssh appends 17 characters
 * while binding, and a socket path must fit in 108 bytes.
 */
export function controlPathVar(dir: string): string {
  // The directory is routeplane's own, but it lands inside a template: only plain path text.
  if (!/^[A-Za-z0-9_./-]+$/.test(dir)) {
    throw new Error(`SSH masters directory ${JSON.stringify(dir)} is not a plain path`);
  }
  const settings = CONNECTION_VARS.map((v) => `${v} | default('')`).join(', ');
  return (
    `${dir}/{{ (inventory_hostname | hash('sha1'))[:12] }}-` +
    `{{ ([${settings}] | to_json | hash('sha1'))[:16] }}`
  );
}

/**
 * SSH masters kept across runs in one routeplane-owned 0700 directory. ssh itself closes a
 * master idle for `ControlPersist` (SSH_MASTER_IDLE_S); this closes the ones of hosts that
 * left the inventory, and all of them on shutdown. A dead instance's directory (and its
 * masters) goes in the start-up sweep of instance workspaces.
 */
export class SshMasters {
  constructor(
    readonly dir: string,
    private readonly logger: Logger,
  ) {}

  private async sockets(): Promise<string[]> {
    return (await readdir(this.dir).catch(() => [] as string[])).filter((s) => SOCKET_NAME.test(s));
  }

  /** Closes the masters of hosts not in `hosts`; returns how many. */
  async retain(hosts: Iterable<string>): Promise<number> {
    const keep = new Set([...hosts].map(hostKey));
    const gone = (await this.sockets()).filter((s) => !keep.has(SOCKET_NAME.exec(s)![1]!));
    await Promise.all(gone.map((s) => exitSshMaster(path.join(this.dir, s))));
    if (gone.length > 0) {
      this.logger.info(
        { event: 'ssh.masters_closed', count: gone.length, reason: 'left the inventory' },
        'closed the SSH masters of hosts that left the inventory',
      );
    }
    return gone.length;
  }

  async closeAll(): Promise<void> {
    await closeSshMasters(this.dir, this.dir);
  }
}
