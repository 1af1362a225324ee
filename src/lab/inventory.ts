import { dump } from 'js-yaml';
import { hostPaths } from './paths.ts';
import { sshCommonArgs } from './ssh.ts';
import type { Lab } from './types.ts';

/** Ansible YAML inventory: group `lab`, hosts h1..hN, each reachable as root over the lab key. */
export function renderInventory(lab: Lab): string {
  const hosts = Object.fromEntries(
    lab.hosts.map((h) => [
      h.name,
      {
        ansible_host: h.ipv4,
        ansible_user: 'root',
        ansible_ssh_private_key_file: lab.privateKeyPath,
        ansible_ssh_common_args: sshCommonArgs(lab),
        ansible_python_interpreter: '/usr/bin/python3',
        // All namespaces share one filesystem with the controller: a per-host remote tmp keeps
        // hosts from trampling each other's (and the controller's) ~/.ansible/tmp.
        ansible_remote_tmp: hostPaths(lab.dir, h.name).remoteTmp,
        netns: h.netns,
        lab_ipv6: h.ipv6,
      },
    ]),
  );
  const inventory = {
    lab: {
      hosts,
      // Shown by the API next to address, port and user (an allowlist: nothing else is).
      vars: { lab_id: lab.id, routeplane_public_vars: ['lab_id', 'netns', 'lab_ipv6'] },
    },
  };
  return `# routeplane lab ${lab.id}; generated\n${dump(inventory, { lineWidth: -1 })}`;
}

/** known_hosts lines for both addresses of every host. */
export function renderKnownHosts(lab: Lab, hostKeys: Map<string, string>): string {
  return lab.hosts
    .flatMap((h) => {
      const key = hostKeys.get(h.name);
      if (!key) throw new Error(`no host key for ${h.name}`);
      return [`${h.ipv4} ${key}`, `${h.ipv6} ${key}`];
    })
    .map((line) => `${line}\n`)
    .join('');
}
