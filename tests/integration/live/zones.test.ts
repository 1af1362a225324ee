import { readFileSync, writeFileSync } from 'node:fs';
import { dump, load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { nsExec } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import { poll } from '../../helpers/routes.ts';
import { useTestServer } from '../../helpers/server.ts';

// A zone set is the networks of the zone's interfaces as the host has them: when the host's
// addresses change, its watcher sees it and routeplane re-applies the table.
const T = 120_000;

describe('a zone set on a watched lab host whose addresses change', { timeout: T }, () => {
  const fleet = useLab(1);
  const server = useTestServer(() => {
    const inventory = load(readFileSync(fleet.lab.inventoryPath, 'utf8')) as {
      lab: { hosts: Record<string, Record<string, unknown>> };
    };
    inventory.lab.hosts.h1!.routeplane_zones = { lan: ['eth0'] };
    const path = `${fleet.lab.inventoryPath}.zones.yml`;
    writeFileSync(path, dump(inventory));
    return { INVENTORY: path, FIREWALL_CONFIRM_S: '0', WATCH_HOSTS: 'true' };
  }, T);

  const zoneSet = () =>
    nsExec(fleet.lab, 'h1', ['nft', 'list', 'set', 'inet', 'routeplane', 'z_lan_4']);

  it('when an address is added by hand to the zone’s interface, then the zone set holds its network', async () => {
    const res = await server.request('POST', '/v1/firewall/rules', {
      body: {
        host: 'h1',
        chain: 'input',
        family: 'ip',
        protocol: 'tcp',
        src: ['@zone:lan'],
        dport: ['8083'],
        action: 'accept',
      },
      token: 'operator',
    });
    expect(res.status, res.text).toBe(201);
    expect(await zoneSet()).toContain(fleet.lab.prefixV4);
    // Let the watcher see the host as the apply left it, so the next change is the address.
    await new Promise((r) => setTimeout(r, 1_000));
    await nsExec(fleet.lab, 'h1', ['ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'eth0']);
    const set = await poll(
      'the zone set to hold 192.0.2.0/24',
      async () => {
        const text = await zoneSet();
        return text.includes('192.0.2.0/24') ? text : undefined;
      },
      30_000,
    );
    expect(set).toContain('192.0.2.0/24');
    expect(set).toContain(fleet.lab.prefixV4);
  });
});
