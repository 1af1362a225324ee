import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { InventoryHost } from '../../../src/hosts/inventory.ts';
import {
  ansibleToJson,
  BOOTSTRAP,
  masterSocketPath,
  splitShellWords,
  watchCommand,
  watchConnection,
  type WatchTarget,
} from '../../../src/live/watch/watch-connection.ts';

const host = (vars: Record<string, unknown>, over: Partial<InventoryHost> = {}): InventoryHost => ({
  name: 'h1',
  groups: ['lab'],
  vars,
  local: false,
  localReason: null,
  ...over,
});

// What the lab's inventory gives each host (src/lab/inventory.ts).
const LAB_VARS = {
  ansible_host: '198.51.100.2',
  ansible_user: 'root',
  ansible_ssh_private_key_file: '/tmp/lab/id_ed25519',
  ansible_ssh_common_args:
    '-o UserKnownHostsFile=/tmp/lab/known_hosts -o StrictHostKeyChecking=yes',
  ansible_python_interpreter: '/usr/bin/python3',
  netns: 'rp-abc-h1',
};

const REMOTE = `/usr/bin/python3 -u -c '${BOOTSTRAP}'`;

function target(vars: Record<string, unknown>, over: Partial<InventoryHost> = {}): WatchTarget {
  const c = watchConnection(host(vars, over));
  if (!c.watched) throw new Error(`not watched: ${c.reason}`);
  return c.target;
}

function reason(vars: Record<string, unknown>): string {
  const c = watchConnection(host(vars));
  if (c.watched) throw new Error('watched');
  return c.reason;
}

describe('watchConnection', () => {
  it('when a host has the lab’s ssh vars, then ssh gets its address, user, key and common args as separate arguments', () => {
    const t = target(LAB_VARS);
    expect(t).toMatchObject({ kind: 'ssh', file: 'ssh', python: '/usr/bin/python3' });
    expect(t.destination).toBe('root@198.51.100.2');
    expect(t.args).toEqual([
      '-T',
      '-x',
      '-a',
      '-o',
      'BatchMode=yes',
      '-o',
      'ServerAliveInterval=5',
      '-o',
      'ServerAliveCountMax=2',
      '-o',
      'ConnectTimeout=5',
      '-i',
      '/tmp/lab/id_ed25519',
      '-l',
      'root',
      '-o',
      'UserKnownHostsFile=/tmp/lab/known_hosts',
      '-o',
      'StrictHostKeyChecking=yes',
      '--',
      '198.51.100.2',
      REMOTE,
    ]);
  });

  it('when port, legacy spellings and extra args are set, then each lands in its own argument', () => {
    const t = target({
      ansible_ssh_host: 'fd00::2',
      ansible_ssh_port: 2222,
      ansible_ssh_user: 'ops',
      ansible_private_key_file: '/keys/my key',
      ansible_ssh_extra_args: `-o 'ProxyJump=ops@bastion'`,
    });
    expect(t.destination).toBe('ops@[fd00::2]:2222');
    const args = t.args.slice(11);
    expect(args).toEqual([
      '-p',
      '2222',
      '-i',
      '/keys/my key',
      '-l',
      'ops',
      '-o',
      'ProxyJump=ops@bastion',
      '--',
      'fd00::2',
      REMOTE,
    ]);
  });

  it('when ansible_host is unset, then the inventory name is the address', () => {
    expect(target({}).args.at(-2)).toBe('h1');
    expect(target({}).destination).toBe('h1');
  });

  it('when values hold shell metacharacters, then they stay whole arguments and the remote command stays the constant', () => {
    const t = target({ ansible_host: 'a;touch /tmp/x', ansible_user: '$(id)' });
    expect(t.args).toContain('a;touch /tmp/x');
    expect(t.args).toContain('$(id)');
    expect(t.args.at(-1)).toBe(REMOTE);
  });

  it.each(['ssh', 'smart', 'ansible.builtin.ssh', undefined])(
    'when ansible_connection is %s, then the host is watched over ssh',
    (connection) => {
      expect(target({ ...LAB_VARS, ansible_connection: connection }).kind).toBe('ssh');
    },
  );

  it.each(['docker', 'winrm', 'paramiko_ssh', 'community.general.lxd', 42])(
    'when ansible_connection is %s, then the host is not watched, with the reason',
    (connection) => {
      expect(reason({ ...LAB_VARS, ansible_connection: connection })).toMatch(
        /ansible_connection .* is not ssh or local/,
      );
    },
  );

  it.each([
    ['ansible_host', '{{ lookup("env", "X") }}'],
    ['ansible_user', '{% if x %}a{% endif %}'],
    ['ansible_ssh_common_args', '-o X={{ y }}'],
    ['ansible_python_interpreter', '{{ ansible_playbook_python }}'],
  ])('when %s is a template, then the host is not watched', (v, value) => {
    expect(reason({ ...LAB_VARS, [v]: value })).toBe(
      `${v} is a template, resolved only in an Ansible run`,
    );
  });

  it('when a password is set, then the host is not watched (keys only, never a prompt)', () => {
    expect(reason({ ...LAB_VARS, ansible_password: 'secret' })).toMatch(/ansible_password is set/);
    expect(reason({ ...LAB_VARS, ansible_password: 'secret' })).not.toContain('secret');
  });

  it('when ansible_ssh_common_args has an unclosed quote, then the host is not watched', () => {
    expect(reason({ ...LAB_VARS, ansible_ssh_common_args: `-o "X=1` })).toBe(
      'ansible_ssh_common_args cannot be split: No closing quotation',
    );
  });

  it('when the host is local, then the script runs here with the same python and no ssh', () => {
    const t = target(
      { ansible_connection: 'local', ansible_python_interpreter: '/opt/py/bin/python3' },
      { local: true, localReason: 'ansible_connection is local' },
    );
    expect(t).toEqual({
      kind: 'local',
      file: '/opt/py/bin/python3',
      args: ['-u', '-c', BOOTSTRAP],
      python: '/opt/py/bin/python3',
      destination: 'local',
      masterSocket: null,
    });
    // An ssh host that turns out to be this machine (a loopback address) runs locally too.
    expect(target({ ansible_host: '127.0.0.1' }, { local: true }).kind).toBe('local');
  });

  it('when ansible_python_interpreter is not an absolute path, then /usr/bin/python3 (or the given default) runs the script', () => {
    expect(target({ ansible_python_interpreter: 'auto_silent' }).python).toBe('/usr/bin/python3');
    expect(target({ ansible_python_interpreter: 'python3' }).args.at(-1)).toBe(REMOTE);
    const c = watchConnection(host({}), { defaultPython: '/usr/local/bin/python3.12' });
    expect(c.watched && c.target.python).toBe('/usr/local/bin/python3.12');
  });

  it('when ansible_python_interpreter is an absolute path the remote shell would read as more than a path, then the host is not watched', () => {
    expect(reason({ ansible_python_interpreter: '/usr/bin/python3 ; rm -rf /' })).toMatch(
      /is not a plain path/,
    );
  });

  it('when the bootstrap is read by any login shell, then it has nothing a shell would expand', () => {
    expect(BOOTSTRAP).not.toMatch(/['!$`\\]/);
  });
});

describe('splitShellWords', () => {
  // Expectations from Python's shlex.split (as Ansible splits ssh args), then trimmed and
  // without empty words, as Ansible's _split_ssh_args does.
  it.each([
    [
      '-o UserKnownHostsFile=/tmp/lab/known_hosts -o StrictHostKeyChecking=yes',
      ['-o', 'UserKnownHostsFile=/tmp/lab/known_hosts', '-o', 'StrictHostKeyChecking=yes'],
    ],
    [
      `-o "ProxyCommand=ssh -W %h:%p bastion" -o 'IdentityFile=/a b/key' x\\ y`,
      ['-o', 'ProxyCommand=ssh -W %h:%p bastion', '-o', 'IdentityFile=/a b/key', 'x y'],
    ],
    [`-o "a\\"b\\\\c\\d" '' ""  -q`, ['-o', 'a"b\\c\\d', '-q']],
    ['  \t\n', []],
    [`a'b c'd`, ['ab cd']],
  ])('when splitting %j, then the words are those of shlex.split', (text, words) => {
    expect(splitShellWords(text)).toEqual(words);
  });

  it('when a quote is not closed, then it throws as shlex does', () => {
    expect(() => splitShellWords(`it's`)).toThrow('No closing quotation');
  });
});

describe('master socket', () => {
  it('when the vars are the lab’s, then the name is the sha1 of Ansible’s to_json of the runner’s list', () => {
    const vars = {
      ansible_host: '198.51.100.2',
      ansible_port: 22,
      ansible_user: 'root',
      ansible_ssh_private_key_file: '/tmp/lab/id_ed25519',
      ansible_ssh_common_args: '-o StrictHostKeyChecking=yes',
    };
    // python3 -c 'import json,hashlib; print(hashlib.sha1(json.dumps([...]).encode()).hexdigest())'
    expect(masterSocketPath('/run/m', host(vars))).toBe(
      path.join('/run/m', 'ac4ae97285c1-164e8bbc346f4c48'),
    );
  });

  it('when values are non-ASCII, null or boolean, then they print as Python’s json.dumps does', () => {
    const list = ['h\u00f6st\u{1f600}', '', null, '', true, '', '', '', '\u007f\n', '', '', ''];
    expect(ansibleToJson(list)).toBe(
      '["h\\u00f6st\\ud83d\\ude00", "", null, "", true, "", "", "", "\\u007f\\n", "", "", ""]',
    );
  });

  it('when a value could print differently in Python (a float, a mapping), then no socket name is claimed', () => {
    expect(ansibleToJson(1.5)).toBeNull();
    expect(ansibleToJson({ a: 1 })).toBeNull();
    expect(masterSocketPath('/run/m', host({ ansible_port: 22.5 }))).toBeNull();
  });

  it('when a master socket is there, then the watcher rides it and never becomes a master; else it connects directly', () => {
    const c = watchConnection(host(LAB_VARS), { mastersDir: '/run/m' });
    if (!c.watched) throw new Error('not watched');
    expect(c.target.masterSocket).toMatch(/^\/run\/m\/ac4ae97285c1-[0-9a-f]{16}$/);
    const via = watchCommand(c.target, true);
    expect(via.viaMaster).toBe(true);
    expect(via.args.slice(0, 4)).toEqual([
      '-o',
      `ControlPath=${c.target.masterSocket}`,
      '-o',
      'ControlMaster=no',
    ]);
    const direct = watchCommand(c.target, false);
    expect(direct.viaMaster).toBe(false);
    expect(direct.args.slice(0, 4)).toEqual(['-o', 'ControlPath=none', '-o', 'ControlMaster=no']);
    expect(direct.args.slice(4)).toEqual(c.target.args);
  });
});
