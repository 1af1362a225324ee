import { isIP } from 'node:net';
import type { InventorySource } from '../hosts/inventory-source.ts';
import type { ManagementAddresses } from '../hosts/management-address.ts';
import type { ReplicaAddresses } from '../hosts/replica-addresses.ts';
import type { Management } from './management-guard.ts';

/**
 * A host's management: the controller's source address towards it (the one its apply module
 * protects), every live replica's, the addresses in its `routeplane_management_sources`
 * inventory variable, and
 * its SSH port (`ansible_port`, default 22).
 */
export async function managementOf(
  host: string,
  inventory: InventorySource,
  addresses: ManagementAddresses,
  replicas?: ReplicaAddresses,
): Promise<Management> {
  const vars = (await inventory.current()).hosts.get(host)?.vars ?? {};
  const listed = Array.isArray(vars.routeplane_management_sources)
    ? vars.routeplane_management_sources.filter((s): s is string => typeof s === 'string')
    : [];
  const controller = (await addresses.of([host]))[host];
  const others = (await replicas?.of([host]))?.get(host) ?? [];
  const sources = [...new Set([...(controller ? [controller] : []), ...others, ...listed])].filter(
    (s) => isIP(s) !== 0,
  );
  const port = Number(vars.ansible_port ?? vars.ansible_ssh_port ?? 22);
  return { sources, sshPort: Number.isInteger(port) && port > 0 ? port : 22 };
}
