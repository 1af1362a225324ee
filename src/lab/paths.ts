import path from 'node:path';

// Every file of a lab lives under its own directory; these are the only names used.
export function labPaths(dir: string) {
  return {
    inventory: path.join(dir, 'inventory.yml'),
    privateKey: path.join(dir, 'id_ed25519'),
    publicKey: path.join(dir, 'id_ed25519.pub'),
    knownHosts: path.join(dir, 'known_hosts'),
    labJson: path.join(dir, 'lab.json'),
    ownerPid: path.join(dir, 'owner.pid'),
    // ansible's ssh ControlPersist sockets, kept out of /root/.ansible/cp
    controlDir: path.join(dir, 'cp'),
  };
}

export function hostPaths(labDir: string, hostName: string) {
  const dir = path.join(labDir, hostName);
  return {
    dir,
    config: path.join(dir, 'sshd_config'),
    hostKey: path.join(dir, 'ssh_host_ed25519_key'),
    pidFile: path.join(dir, 'sshd.pid'),
    log: path.join(dir, 'sshd.log'),
    remoteTmp: path.join(dir, 'remote-tmp'),
  };
}
