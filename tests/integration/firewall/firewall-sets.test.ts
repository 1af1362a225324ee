import { readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { dump, load } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labSsh } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import { expectProblem } from '../../helpers/problem.ts';
import { tcpListeners, tcpReachable } from '../../helpers/tcp-probe.ts';
import { poll } from '../../helpers/routes.ts';
import { useTestServer } from '../../helpers/server.ts';

// Firewall sets through the API: a blocklist for the lab group named by a drop rule on h1, a
// port set, and h1's own zone set; each change seen as real packets from h2, whose own
// firewall its inventory hands to routeplane.
const T = 120_000;

interface Inventory {
  lab: { hosts: Record<string, Record<string, unknown>> };
}

describe('firewall sets through the API, on a lab of 2 hosts', { timeout: T }, () => {
  const fleet = useLab(2);
  const server = useTestServer(() => {
    // h1's only interface is its lan zone.
    const inventory = load(readFileSync(fleet.lab.inventoryPath, 'utf8')) as Inventory;
    inventory.lab.hosts.h1!.routeplane_zones = { lan: ['eth0'] };
    // h2's firewall is routeplane's from the start, without a rule.
    inventory.lab.hosts.h2!.routeplane_firewall_managed = true;
    const path = `${fleet.lab.inventoryPath}.zones.yml`;
    writeFileSync(path, dump(inventory));
    // Confirms are tested in firewall-confirm*.test.ts and firewall-api.test.ts; here each
    // apply would only pay their extra SSH handshake.
    return { INVENTORY: path, FIREWALL_CONFIRM_S: '0' };
  }, T);
  let stopListeners: (() => Promise<void>) | undefined;
  const h1 = () => fleet.lab.hosts[0]!;
  const h2 = () => fleet.lab.hosts[1]!;
  const reachable = (port: number) => tcpReachable(h2(), h1(), port);
  let blocklist = '';
  let dropRule = '';

  beforeAll(async () => {
    stopListeners = await tcpListeners(h1(), [8080, 8081, 8082, 8083]);
  }, T);

  afterAll(async () => {
    await stopListeners?.();
  });

  const post = (path: string, body: unknown) =>
    server.request('POST', path, { token: 'operator', body });

  it('when a set is made for a group, then it is 201 with its canonical elements, applied to the group’s managed members', async () => {
    const res = await post('/v1/firewall/sets', {
      name: 'blocklist',
      host: 'lab',
      type: 'address',
      elements: ['2001:db8:bad::/48'],
      comment: 'scanners',
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({
      name: 'blocklist',
      host: 'lab',
      type: 'address',
      elements: ['2001:db8:bad::/48'],
      comment: 'scanners',
      created_by: 'operator',
      deleted_at: null,
      // h2 (managed by its inventory) is the group's one managed member so far.
      apply: { settled: true, hosts: [{ host: 'h2', state: 'in_sync', error: null }] },
    });
    blocklist = res.body.id;
  });

  it('when the same name is made again for the same group, then it is a 409', async () => {
    const res = await post('/v1/firewall/sets', { name: 'blocklist', host: 'lab', type: 'port' });
    expectProblem(res, 409, 'conflict');
  });

  it('when a set element is not an address, then it is a 400 naming the element', async () => {
    const res = await post('/v1/firewall/sets', {
      name: 'bad',
      host: 'h1',
      type: 'address',
      elements: ['192.0.2.1/24'],
    });
    expectProblem(res, 400, 'validation', { field: '/body/elements/0' });
  });

  it('when a rule names a set that does not exist, then it is a 400 on the field', async () => {
    const res = await post('/v1/firewall/rules', {
      host: 'h1',
      chain: 'input',
      src: ['@nosuch'],
      action: 'drop',
    });
    expectProblem(res, 400, 'validation', { field: '/body/src', detail: /no set 'nosuch'/ });
  });

  it('when a rule names a zone the host does not have, then it is a 400 on the field', async () => {
    const res = await post('/v1/firewall/rules', {
      host: 'h1',
      chain: 'input',
      src: ['@zone:dmz'],
      action: 'accept',
    });
    expectProblem(res, 400, 'validation', { field: '/body/src', detail: /no zone 'dmz'/ });
  });

  it('when a set reference is mixed with addresses, then it is a 400 on the field', async () => {
    const res = await post('/v1/firewall/rules', {
      host: 'h1',
      chain: 'input',
      src: ['@blocklist', '192.0.2.1'],
      action: 'drop',
    });
    expectProblem(res, 400, 'validation', { field: '/body/src', detail: /stands alone/ });
  });

  it('when an address set is named as ports, then it is a 400 saying what the set holds', async () => {
    const res = await post('/v1/firewall/rules', {
      host: 'h1',
      chain: 'input',
      protocol: 'tcp',
      dport: ['@blocklist'],
      action: 'accept',
    });
    expectProblem(res, 400, 'validation', {
      field: '/body/dport',
      detail: /holds addresses, not ports/,
    });
  });

  it('when h1 opens tcp/8080 and drops the blocklist first, then h2 still reaches 8080 (the set is empty of it)', async () => {
    const res = await post('/v1/firewall/rules', [
      { host: 'h1', chain: 'input', protocol: 'tcp', dport: ['8080'], action: 'accept' },
      { host: 'h1', chain: 'input', src: ['@blocklist'], action: 'drop', priority: 10 },
    ]);
    expect(res.status, res.text).toBe(201);
    expect(res.body.counts).toEqual({ in_sync: 2 });
    dropRule = res.body.items[1].rule.id;
    expect(res.body.items[1].rule.src).toEqual(['@blocklist']);
    expect(await reachable(8080)).toBe(true);
  });

  it('when h2’s address is added to the blocklist, then it is applied to h1 and h2 is dropped', async () => {
    const res = await post(`/v1/firewall/sets/${blocklist}/elements`, { elements: [h2().ipv4] });
    expect(res.status, res.text).toBe(200);
    expect(res.body.elements).toEqual([`${h2().ipv4}/32`, '2001:db8:bad::/48']);
    expect(res.body.apply).toMatchObject({
      settled: true,
      hosts: [
        { host: 'h1', state: 'in_sync', error: null },
        { host: 'h2', state: 'in_sync', error: null },
      ],
    });
    expect(await reachable(8080)).toBe(false);
    expect(await labSsh(fleet.lab, 'h1', ['echo', 'management'])).toBe('management');
  });

  it('when the controller’s own address is added to the blocklist, then it is a 409 and the set is unchanged', async () => {
    const res = await post(`/v1/firewall/sets/${blocklist}/elements`, {
      elements: [fleet.lab.gatewayV4],
    });
    expectProblem(res, 409, 'conflict');
    expect(res.text).toContain(dropRule);
    const set = await server.request('GET', `/v1/firewall/sets/${blocklist}`, {
      token: 'viewer',
    });
    expect(set.body.elements).toEqual([`${h2().ipv4}/32`, '2001:db8:bad::/48']);
  });

  it('when h2’s address is removed, then h2 reaches 8080 again and the events name who did what', async () => {
    const res = await server.request(
      'DELETE',
      `/v1/firewall/sets/${blocklist}/elements?element=${encodeURIComponent(h2().ipv4)}`,
      { token: 'operator' },
    );
    expect(res.status, res.text).toBe(200);
    expect(res.body.elements).toEqual(['2001:db8:bad::/48']);
    expect(await reachable(8080)).toBe(true);
    const events = await server.request('GET', `/v1/firewall/sets/${blocklist}/events`, {
      token: 'viewer',
    });
    expect(events.status).toBe(200);
    expect(
      events.body.items.map((e: { action: string; actor: string; elements: string[] }) => [
        e.action,
        e.actor,
        e.elements,
      ]),
    ).toEqual([
      ['create', 'operator', ['2001:db8:bad::/48']],
      ['add', 'operator', [`${h2().ipv4}/32`]],
      ['remove', 'operator', [`${h2().ipv4}/32`]],
    ]);
  });

  it('when a viewer tries to change a set, then it is a 403', async () => {
    const res = await server.request('POST', `/v1/firewall/sets/${blocklist}/elements`, {
      token: 'viewer',
      body: { elements: ['192.0.2.1'] },
    });
    expectProblem(res, 403, 'forbidden');
  });

  it('when a port set opens 8081 for h1, then adding and removing 8082 opens and closes it', async () => {
    const set = await post('/v1/firewall/sets', {
      name: 'web',
      host: 'h1',
      type: 'port',
      elements: ['8081'],
    });
    expect(set.status, set.text).toBe(201);
    const rule = await post('/v1/firewall/rules', {
      host: 'h1',
      chain: 'input',
      protocol: 'tcp',
      dport: ['@web'],
      action: 'accept',
    });
    expect(rule.status, rule.text).toBe(201);
    expect(await reachable(8081)).toBe(true);
    expect(await reachable(8082)).toBe(false);
    const added = await post(`/v1/firewall/sets/${set.body.id}/elements`, { elements: ['8082'] });
    expect(added.status, added.text).toBe(200);
    expect(await reachable(8082)).toBe(true);
  });

  it('when a set that a live rule names is deleted, then it is a 409 naming the rule; once the rule is gone, the set goes', async () => {
    const refused = await server.request('DELETE', `/v1/firewall/sets/${blocklist}`, {
      token: 'operator',
    });
    expectProblem(refused, 409, 'conflict');
    expect(refused.text).toContain(dropRule);
    const gone = await server.request('DELETE', `/v1/firewall/rules/${dropRule}`, {
      token: 'operator',
    });
    expect(gone.status, gone.text).toBe(200);
    const deleted = await server.request('DELETE', `/v1/firewall/sets/${blocklist}`, {
      token: 'operator',
    });
    expect(deleted.status, deleted.text).toBe(200);
    expect(deleted.body.deleted_by).toBe('operator');
    const list = await server.request('GET', '/v1/firewall/sets?host=h1', { token: 'viewer' });
    expect(list.body.items.map((s: { name: string }) => s.name)).toEqual(['web']);
  });

  it('when a rule accepts tcp/8083 from h1’s lan zone, then h2 on that network reaches it, and the zone set holds the network read on the host', async () => {
    const res = await post('/v1/firewall/rules', {
      host: 'h1',
      chain: 'input',
      family: 'ip',
      protocol: 'tcp',
      src: ['@zone:lan'],
      dport: ['8083'],
      action: 'accept',
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.sync).toMatchObject({ state: 'in_sync' });
    const listing = await execa('ip', [
      'netns',
      'exec',
      h1().netns,
      'nft',
      'list',
      'set',
      'inet',
      'routeplane',
      'z_lan_4',
    ]);
    expect(listing.stdout).toContain(fleet.lab.prefixV4);
    expect(await reachable(8083)).toBe(true);
  });

  it('when h1’s firewall is previewed, then the table the next apply would load is checked by nft and another table on the input hook is warned of, and nothing changes', async () => {
    await execa('ip', ['netns', 'exec', h1().netns, 'nft', '-f', '-'], {
      input:
        'table ip handmade {\n  chain watch {\n    type filter hook input priority 10; policy accept;\n  }\n}\n',
    });
    const before = (await execa('ip', ['netns', 'exec', h1().netns, 'nft', 'list', 'ruleset']))
      .stdout;
    const res = await server.request('POST', '/v1/hosts/h1/firewall/preview', {
      token: 'operator',
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ host: 'h1', managed: true, valid: true, error: null });
    expect(res.body.table).toContain('table inet routeplane');
    expect(res.body.table).toContain('set z_lan_4');
    expect(res.body.warnings).toEqual([expect.stringContaining('table ip handmade')]);
    const after = (await execa('ip', ['netns', 'exec', h1().netns, 'nft', 'list', 'ruleset']))
      .stdout;
    expect(after).toBe(before);
  });

  it('when a viewer asks for a preview, then it is a 403', async () => {
    const res = await server.request('POST', '/v1/hosts/h1/firewall/preview', { token: 'viewer' });
    expectProblem(res, 403, 'forbidden');
  });

  it('when a host’s inventory says routeplane manages its firewall, then its table is there without a rule, and releasing it is a 409', async () => {
    await poll(
      'h2’s table',
      async () => {
        const r = await execa('ip', ['netns', 'exec', h2().netns, 'nft', 'list', 'tables']);
        return r.stdout.includes('table inet routeplane') ? true : undefined;
      },
      30_000,
      500,
    );
    const rules = await server.request('GET', '/v1/firewall/rules?host=h2', { token: 'viewer' });
    expect(rules.body.total).toBe(0);
    const release = await server.request('DELETE', '/v1/hosts/h2/firewall', { token: 'operator' });
    expectProblem(release, 409, 'conflict', { detail: /routeplane_firewall_managed/ });
  });
});
