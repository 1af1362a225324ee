import { describe, expect, it } from 'vitest';
import {
  addressSet,
  controllerReason,
  inventoryFromAnsibleList,
  InventoryError,
  publicVars,
  resolveTargets,
  type ControllerIdentity,
} from '../../../src/hosts/inventory.ts';

// The shape `ansible-inventory --list` prints: Ansible has merged every host's vars already.
const LISTED = {
  _meta: {
    hostvars: {
      localhost: { ansible_connection: 'local' },
      r1: { ansible_host: '198.51.100.1', site: 'edge' },
      r2: { ansible_host: '198.51.100.2', site: 'dc1' },
      b1: { ansible_host: '198.51.100.3' },
    },
  },
  all: { children: ['ungrouped', 'routers', 'bastions'] },
  ungrouped: { hosts: ['localhost'] },
  routers: { hosts: ['r1'], children: ['core'] },
  core: { hosts: ['r2'] },
  bastions: { hosts: ['b1', 'r1'] },
};

const ME: ControllerIdentity = {
  addresses: addressSet(['192.0.2.44', '2001:db8:1::44']),
  names: new Set(['ctl.example.test']),
};

describe('the fleet from ansible-inventory --list', () => {
  const inv = inventoryFromAnsibleList(LISTED, ME);

  it('when groups nest, then each host lists every group it is in and a parent contains its children', () => {
    expect(inv.hosts.get('r1')?.groups).toEqual(['bastions', 'routers']);
    expect(inv.hosts.get('r2')?.groups).toEqual(['core', 'routers']);
    expect(inv.groups.get('routers')).toEqual(['r1', 'r2']);
    expect(inv.groups.get('all')).toEqual(['b1', 'localhost', 'r1', 'r2']);
    expect(inv.groups.get('ungrouped')).toEqual(['localhost']);
  });

  it('when Ansible merged the vars, then they are the host vars as listed', () => {
    expect(inv.hosts.get('r2')?.vars).toEqual({ ansible_host: '198.51.100.2', site: 'dc1' });
  });

  it('when a host uses the local connection, then it is the controller and says why', () => {
    expect(inv.hosts.get('localhost')).toMatchObject({
      local: true,
      localReason: 'ansible_connection is local',
    });
    expect(inv.hosts.get('r1')).toMatchObject({ local: false, localReason: null });
  });

  it('when a group has no hosts, then it still exists, empty, as Ansible lists it among children', () => {
    const withEmpty = inventoryFromAnsibleList(
      { ...LISTED, all: { children: [...LISTED.all.children, 'empty'] } },
      ME,
    );
    expect(withEmpty.groups.get('empty')).toEqual([]);
  });

  it('when the output is not an inventory, then it is an InventoryError', () => {
    expect(() => inventoryFromAnsibleList(null, ME)).toThrow(InventoryError);
  });

  it('when groups list each other as children, then expansion still ends', () => {
    const looped = inventoryFromAnsibleList(
      {
        _meta: { hostvars: { a: {} } },
        all: { children: ['x'] },
        x: { hosts: ['a'], children: ['y'] },
        y: { children: ['x'] },
      },
      ME,
    );
    expect(looped.groups.get('y')).toEqual(['a']);
  });
});

describe('which host is the controller', () => {
  it.each([
    ['ansible_connection local', { ansible_connection: 'local' }],
    ['ansible_connection ansible.builtin.local', { ansible_connection: 'ansible.builtin.local' }],
    ['ansible_connection ansible.legacy.local', { ansible_connection: 'ansible.legacy.local' }],
    ['a templated ansible_connection', { ansible_connection: '{{ conn }}' }],
    ['a templated ansible_host', { ansible_host: '{{ lookup("env", "X") }}' }],
    ['a templated ansible_port', { ansible_port: '{% if x %}22{% endif %}' }],
    ['a templated ansible_user', { ansible_user: '{{ who }}' }],
    ['a templated legacy ansible_ssh_host', { ansible_ssh_host: '{{ h }}' }],
    ['ansible_host 127.0.0.1', { ansible_host: '127.0.0.1' }],
    ['ansible_host 127.3.4.5', { ansible_host: '127.3.4.5' }],
    ['ansible_host ::1', { ansible_host: '::1' }],
    ['ansible_host [::1]', { ansible_host: '[::1]' }],
    ['ansible_host ::ffff:127.0.0.1', { ansible_host: '::ffff:127.0.0.1' }],
    ['ansible_host 0.0.0.0', { ansible_host: '0.0.0.0' }],
    ['ansible_host localhost', { ansible_host: 'localhost' }],
    ['ansible_host LOCALHOST', { ansible_host: 'LOCALHOST' }],
    ['ansible_host one of its own addresses', { ansible_host: '192.0.2.44' }],
    ['ansible_host its own v6 address, spelled long', { ansible_host: '2001:0db8:1:0::44' }],
    ['ansible_host its own name', { ansible_host: 'ctl.example.test' }],
  ])('when a host has %s, then it counts as the controller', (_why, vars) => {
    expect(controllerReason('h1', vars, ME)).not.toBeNull();
  });

  it('when a host has no ansible_host and its name is localhost, then it counts as the controller', () => {
    expect(controllerReason('localhost', {}, ME)).toMatch(/localhost/);
  });

  it.each([
    ['another address', { ansible_host: '198.51.100.9' }],
    ['an ssh connection to another name', { ansible_connection: 'ssh', ansible_host: 'r1.test' }],
    ['a template in a var that is not a connection var', { motd: '{{ x }}' }],
  ])('when a host has %s, then it is not the controller', (_why, vars) => {
    expect(controllerReason('h1', vars, ME)).toBeNull();
  });
});

describe('publicVars', () => {
  const secretive = {
    ansible_host: '198.51.100.1',
    ansible_port: 2222,
    ansible_user: 'root',
    ansible_password: 'hunter2',
    ansible_become_pass: 'hunter2',
    ansible_ssh_private_key_file: '/keys/id',
    ansible_ssh_common_args: '-o ProxyCommand="ssh -W %h:%p jump"',
    snmp: { community: 'public-secret', v3: { auth_pass: 'x' } },
    api_token: 't',
    rack: 'r12',
    ports: [22, 443],
  };

  it('when vars hold credentials, nested secrets and SSH arguments, then only address, port and user are shown', () => {
    expect(publicVars(secretive)).toEqual({
      ansible_host: '198.51.100.1',
      ansible_port: 2222,
      ansible_user: 'root',
    });
  });

  it('when the operator lists keys in routeplane_public_vars, then those are shown too, never a connection variable', () => {
    expect(
      publicVars({
        ...secretive,
        routeplane_public_vars: ['rack', 'ports', 'ansible_ssh_common_args', 'missing'],
      }),
    ).toEqual({
      ansible_host: '198.51.100.1',
      ansible_port: 2222,
      ansible_user: 'root',
      rack: 'r12',
      ports: [22, 443],
    });
  });

  it('when a listed key holds vaulted values, then they are dropped at any depth', () => {
    expect(
      publicVars({
        routeplane_public_vars: ['site', 'inline', 'whole'],
        site: { name: 'dc1', key: { __ansible_vault: '$ANSIBLE_VAULT;1.1;AES256\n61' } },
        inline: '$ANSIBLE_VAULT;1.1;AES256\n616263',
        whole: { __ansible_vault: '$ANSIBLE_VAULT;1.1;AES256\n616263' },
      }),
    ).toEqual({ site: { name: 'dc1' } });
  });
});

describe('resolveTargets', () => {
  const inv = inventoryFromAnsibleList(LISTED, ME);

  it('when names mix hosts and groups, then they expand to sorted unique hosts', () => {
    expect(resolveTargets(inv, ['routers', 'r1', 'b1'])).toEqual({
      hosts: ['b1', 'r1', 'r2'],
      unknown: [],
    });
  });

  it('when a name is neither a host nor a group, then it is reported, not treated as a pattern', () => {
    expect(resolveTargets(inv, ['r*', 'b1'])).toEqual({ hosts: ['b1'], unknown: ['r*'] });
  });
});
