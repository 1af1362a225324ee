// Only what ansible needs: the server's own secrets (tokens, database URL, vault password)
// must not reach a child's environment.
const INHERITED_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ', 'SSH_AUTH_SOCK'];

/**
 * The environment every Ansible process routeplane starts (ansible-playbook, ansible-inventory)
 * begins with: the allowlisted variables of this process, and the settings that make an
 * inventory source Ansible cannot parse an error (by default it warns and goes on with no
 * hosts), so what routeplane reads and what a run uses fail the same way.
 */
export function ansibleBaseEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of INHERITED_ENV) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return {
    ...env,
    ANSIBLE_INVENTORY_UNPARSED_FAILED: 'True',
    ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED: 'True',
    ANSIBLE_NOCOLOR: 'True',
    ANSIBLE_DEPRECATION_WARNINGS: 'False',
  };
}

/** The directories a playbook run's Ansible settings point at. */
export interface RunDirectories {
  /** Where ssh's ControlPath sockets are made when a host has no explicit one. */
  controlPathDir: string;
  /** Ansible's local temp dir; its AnsiballZ cache lives there. */
  localTempDir: string;
  /** Modules beside the playbook's own `library/`. */
  libraryDir: string;
}

/**
 * The environment of every playbook run, spawned or warm: results come as JSON lines,
 * modules are piped over one SSH session, and host keys are checked. `sshMasterIdleS` is how
 * long ssh keeps a master with no session open (ControlPersist): masters outlive a run so
 * the next one skips the SSH handshake; ServerAlive notices a dead peer.
 */
export function ansibleRunEnvironment(
  dirs: RunDirectories,
  sshMasterIdleS: number,
  /** Hosts' Python unless their inventory says; a config default, below inventory vars. */
  hostPython = '/usr/bin/python3',
): Record<string, string> {
  const persist = sshMasterIdleS > 0 ? `${sshMasterIdleS}s` : '60s';
  return {
    ...ansibleBaseEnvironment(),
    ANSIBLE_STDOUT_CALLBACK: 'ansible.posix.jsonl',
    ANSIBLE_LOAD_CALLBACK_PLUGINS: 'True',
    ANSIBLE_PIPELINING: 'True',
    ANSIBLE_HOST_KEY_CHECKING: 'True',
    ANSIBLE_RETRY_FILES_ENABLED: 'False',
    ANSIBLE_FORCE_COLOR: 'False',
    ANSIBLE_SSH_ARGS: `-C -o ControlMaster=auto -o ControlPersist=${persist} -o ServerAliveInterval=5 -o ServerAliveCountMax=3`,
    ANSIBLE_SSH_CONTROL_PATH_DIR: dirs.controlPathDir,
    // Explicit, so a control_path in ~/.ansible.cfg or /etc/ansible cannot move the sockets
    // to where routeplane does not find and close them. `%%C` is ssh's own hash of the
    // connection, escaped for Ansible's % formatting. Runs name each host's socket themselves
    // (ssh-masters.ts); this is the fallback.
    ANSIBLE_SSH_CONTROL_PATH: '%(directory)s/%%C',
    ANSIBLE_LOCAL_TEMP: dirs.localTempDir,
    ANSIBLE_LIBRARY: dirs.libraryDir,
    ANSIBLE_PYTHON_INTERPRETER: hostPython,
    ANSIBLE_SYSTEM_WARNINGS: 'False',
    PYTHONUNBUFFERED: '1',
  };
}
