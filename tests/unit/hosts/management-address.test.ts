import { describe, expect, it } from 'vitest';
import { ManagementAddresses } from '../../../src/hosts/management-address.ts';
import type { InventorySource } from '../../../src/hosts/inventory-source.ts';
import type { Inventory, InventoryHost } from '../../../src/hosts/inventory.ts';

function inventoryOf(hosts: Record<string, Partial<InventoryHost>>): InventorySource {
  const inventory: Inventory = {
    hosts: new Map(
      Object.entries(hosts).map(([name, h]) => [
        name,
        { name, groups: [], vars: {}, local: false, localReason: null, ...h },
      ]),
    ),
    groups: new Map(),
  };
  return { current: async () => inventory } as unknown as InventorySource;
}

describe('the management address towards each host (ip route get on the controller)', () => {
  it('when hosts are named by IPv4 and IPv6 literals, then each gets the source the kernel picks towards it', async () => {
    const addresses = new ManagementAddresses(
      inventoryOf({
        a: { vars: { ansible_host: '127.0.0.1' } },
        b: { vars: { ansible_host: '[::1]' } },
        c: { vars: { ansible_ssh_host: '127.0.0.1' } },
      }),
    );
    expect(await addresses.of(['a', 'b', 'c'])).toEqual({
      a: '127.0.0.1',
      b: '::1',
      c: '127.0.0.1',
    });
  });

  it('when a host is local, named by a DNS name or not in the inventory, then it gets none', async () => {
    const addresses = new ManagementAddresses(
      inventoryOf({
        local: { vars: { ansible_host: '127.0.0.1' }, local: true },
        named: { vars: { ansible_host: 'bastion.example.net' } },
      }),
    );
    expect(await addresses.of(['local', 'named', 'missing'])).toEqual({});
  });
});
