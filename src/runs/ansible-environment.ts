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
