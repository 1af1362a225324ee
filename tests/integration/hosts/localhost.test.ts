import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

interface IpLink {
  ifname: string;
  flags: string[];
  addr_info: { family: string; local: string; prefixlen: number; scope: string }[];
}

describe('hosts, given the default inventory (this machine over a local connection)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('when the fleet is listed, then localhost is the only host, local and read-only', async () => {
    const res = await server.request('GET', '/v1/hosts', { token: 'viewer' });
    expect(res.body.items).toEqual([
      {
        name: 'localhost',
        groups: [],
        // An allowlist: a local host has no address, port or user to show.
        vars: {},
        local: true,
        local_reason: 'ansible_connection is local',
        read_only: true,
        reachable: null,
        last_seen_at: null,
        last_error: null,
      },
    ]);
  });

  it('when localhost is fetched with refresh=true, then its loopback lo has the addresses this machine reports', async () => {
    const res = await server.request('GET', '/v1/hosts/localhost?refresh=true', {
      token: 'viewer',
    });
    expect(res.status, res.text).toBe(200);
    const [lo] = JSON.parse(
      (await execa('ip', ['-j', 'addr', 'show', 'dev', 'lo'])).stdout,
    ) as IpLink[];
    const link = res.body.state.links.find((l: { ifname: string }) => l.ifname === 'lo');
    expect(link.flags).toEqual(lo!.flags);
    expect(link.flags).toContain('LOOPBACK');
    const addresses = res.body.state.addresses
      .filter((a: { ifname: string }) => a.ifname === 'lo')
      .map(
        (a: { family: string; address: string; prefixlen: number }) =>
          `${a.family} ${a.address}/${a.prefixlen}`,
      )
      .sort();
    expect(addresses).toEqual(
      lo!.addr_info.map((a) => `${a.family} ${a.local}/${a.prefixlen}`).sort(),
    );
    expect(addresses).toContain('inet 127.0.0.1/8');
    expect(res.body).toMatchObject({
      name: 'localhost',
      local: true,
      read_only: true,
      reachable: true,
    });
  });

  it('when localhost has been gathered, then its interface lo is served from that snapshot', async () => {
    const res = await server.request('GET', '/v1/hosts/localhost/interfaces/lo', {
      token: 'viewer',
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ ifname: 'lo', mtu: expect.any(Number) });
    expect(res.body.addresses).toContainEqual({
      ifname: 'lo',
      family: 'inet',
      address: '127.0.0.1',
      prefixlen: 8,
      scope: 'host',
    });
    const gathers = await server.database.db
      .knex('runs')
      .where({ kind: 'gather' })
      .count({ n: '*' });
    expect(Number(gathers[0]!.n)).toBe(1);
  });
});
