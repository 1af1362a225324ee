export interface LabHost {
  /** Inventory name: "h1".."hN". */
  name: string;
  netns: string;
  ipv4: string;
  ipv6: string;
  ifname: 'eth0';
  sshdPidFile: string;
}

export interface Lab {
  id: string;
  dir: string;
  slot: number;
  bridge: string;
  gatewayV4: string;
  gatewayV6: string;
  /** e.g. 198.51.100.16/28 */
  prefixV4: string;
  prefixV6: string;
  hosts: LabHost[];
  inventoryPath: string;
  privateKeyPath: string;
  knownHostsPath: string;
}

export function findHost(lab: Lab, hostName: string): LabHost {
  const host = lab.hosts.find((h) => h.name === hostName);
  if (!host) {
    const names = lab.hosts.map((h) => h.name).join(', ');
    throw new Error(`lab ${lab.id} has no host ${JSON.stringify(hostName)} (hosts: ${names})`);
  }
  return host;
}
