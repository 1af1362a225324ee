import { describe, expect, it } from 'vitest';
import {
  InventoryError,
  parseInventory,
  publicVars,
  resolveTargets,
} from '../../../src/hosts/inventory.ts';

const FLEET = `
all:
  vars:
    ansible_user: root
    site: lab
  hosts:
    localhost:
      ansible_connection: local
  children:
    routers:
      vars:
        site: edge
        role: router
      hosts:
        r1:
          ansible_host: 198.51.100.1
      children:
        core:
          vars: { role: core }
          hosts:
            r2:
              ansible_host: 198.51.100.2
              site: dc1
    bastions:
      hosts:
        b1:
          ansible_host: 198.51.100.3
        r1:
`;

describe('parseInventory', () => {
  const inv = parseInventory(FLEET);

  it('when groups nest, then each host lists its own groups and a parent group contains its children', () => {
    expect(inv.hosts.get('r1')?.groups).toEqual(['bastions', 'routers']);
    expect(inv.hosts.get('r2')?.groups).toEqual(['core']);
    expect(inv.groups.get('routers')).toEqual(['r1', 'r2']);
    expect(inv.groups.get('all')).toEqual(['b1', 'localhost', 'r1', 'r2']);
    expect(inv.groups.get('ungrouped')).toEqual(['localhost']);
  });

  it('when vars are set at several levels, then host vars win over child groups over parents', () => {
    expect(inv.hosts.get('r2')?.vars).toEqual({
      ansible_user: 'root',
      site: 'dc1',
      role: 'core',
      ansible_host: '198.51.100.2',
    });
    expect(inv.hosts.get('r1')?.vars).toMatchObject({ site: 'edge', role: 'router' });
  });

  it('when a host uses the local connection, then it is marked local', () => {
    expect(inv.hosts.get('localhost')?.local).toBe(true);
    expect(inv.hosts.get('r1')?.local).toBe(false);
  });

  it('when a value is inline-vaulted or marked unsafe, then the inventory still parses', () => {
    const parsed = parseInventory(
      [
        'all:',
        '  hosts:',
        '    h1:',
        '      db_password: !vault |',
        '        $ANSIBLE_VAULT;1.1;AES256',
        '        61626364',
        '      motd: !unsafe "{{ not templated }}"',
      ].join('\n'),
    );
    expect(parsed.hosts.get('h1')?.vars).toEqual({
      db_password: { __ansible_vault: expect.stringContaining('$ANSIBLE_VAULT;1.1;AES256') },
      motd: '{{ not templated }}',
    });
  });

  it('when a group is not a mapping, then it is rejected naming the group', () => {
    expect(() => parseInventory('all:\n  children:\n    web: [a, b]\n')).toThrow(InventoryError);
    expect(() => parseInventory('all:\n  children:\n    web: [a, b]\n')).toThrow(/group web/);
  });
});

describe('publicVars', () => {
  it('when vars hold credentials or vaulted values, then only the others are shown', () => {
    expect(
      publicVars({
        ansible_host: '198.51.100.1',
        ansible_user: 'root',
        ansible_password: 'hunter2',
        ansible_become_pass: 'hunter2',
        ansible_ssh_private_key_file: '/keys/id',
        api_token: 't',
        client_secret: 's',
        vault_addr: 'x',
        aws_credentials: 'c',
        some_api_key: 'k',
        inline: '$ANSIBLE_VAULT;1.1;AES256\n616263',
        tagged: { __ansible_vault: '$ANSIBLE_VAULT;1.1;AES256\n616263' },
        ports: [22, 443],
      }),
    ).toEqual({ ansible_host: '198.51.100.1', ansible_user: 'root', ports: [22, 443] });
  });
});

describe('resolveTargets', () => {
  const inv = parseInventory(FLEET);

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

describe('parseInventory, group variable precedence', () => {
  it('when a host is in two groups, then the vars of all never override those of either group', () => {
    const inv = parseInventory(
      [
        'all:',
        '  vars: { ansible_connection: ssh, ansible_user: root }',
        '  children:',
        '    controller:',
        '      vars: { ansible_connection: local }',
        '      hosts: { ctl: {} }',
        '    zz_monitoring:',
        '      hosts: { ctl: {} }',
      ].join('\n'),
    );
    expect(inv.hosts.get('ctl')).toMatchObject({
      local: true,
      vars: { ansible_connection: 'local', ansible_user: 'root' },
    });
  });

  it('when two groups of the same depth set a var, then the one later by name wins, as in Ansible', () => {
    const inv = parseInventory(
      [
        'all:',
        '  children:',
        '    b_group: { vars: { colour: blue }, hosts: { h1: {} } }',
        '    a_group: { vars: { colour: amber }, hosts: { h1: {} } }',
      ].join('\n'),
    );
    expect(inv.hosts.get('h1')?.vars).toEqual({ colour: 'blue' });
  });
});
