import path from 'node:path';
import { REPO } from './server.ts';

/**
 * The environment of an Ansible run a test starts itself inside a lab namespace (a local
 * connection): routeplane's modules and module_utils, the JSON callback, temp dirs under `tmp`,
 * and nothing else from the test process's environment.
 */
export function localAnsibleEnv(tmp: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: tmp,
    ANSIBLE_LIBRARY: path.join(REPO, 'playbooks/library'),
    ANSIBLE_MODULE_UTILS: path.join(REPO, 'playbooks/module_utils'),
    ANSIBLE_LOCAL_TEMP: path.join(tmp, 'local'),
    ANSIBLE_REMOTE_TEMP: path.join(tmp, 'remote'),
    ANSIBLE_STDOUT_CALLBACK: 'ansible.posix.json',
    ANSIBLE_LOAD_CALLBACK_PLUGINS: 'True',
    ANSIBLE_NOCOLOR: 'True',
    ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3',
    ANSIBLE_DEPRECATION_WARNINGS: 'False',
  };
}
