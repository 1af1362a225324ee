import { readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { dump, load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { FailoverChecks } from '../../../src/firewall/failover-checks.ts';
import { FirewallStore } from '../../../src/firewall/firewall-store.ts';
import { findHost, nsExec } from '../../../src/lab/index.ts';
import { createLogger } from '../../../src/logger.ts';
import { RoutesStore } from '../../../src/routes/routes-store.ts';
import { useLab } from '../../helpers/lab.ts';
import { poll } from '../../helpers/routes.ts';
import { useTestServer } from '../../helpers/server.ts';
import { tcpReachable } from '../../helpers/tcp-probe.ts';

// The firewall side of route failover, on a lab of 3 hosts: h2's firewall is routeplane's (its
// inventory says so; input policy drop, the default), and a candidate route on h1 via h2 and h3
// checks both by icmp and tcp/22. h1 is not management for h2, so only the accepts routeplane
// renders for the route's checks let h1's echo requests and connections to port 22 into h2.
// Real packets: an ICMP echo from a raw socket in h1 (the machine has no ping), and a TCP
// connection to h2's sshd.
const T = 120_000;
const TO = '203.0.113.0/24';
const COMMENT = 'rp:failover-checks';

interface Inventory {
  lab: { hosts: Record<string, Record<string, unknown>> };
}

// One echo request to argv[1], true (exit 0) when its echo reply comes back within a second.
const ECHO = `
import os, socket, struct, sys, time
dst = sys.argv[1]
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
ident = os.getpid() & 0xffff
body = b"routeplane-check"
head = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
packet = struct.pack("!BBHHH", 8, 0, csum(head + body), ident, 1) + body
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(1)
s.sendto(packet, (dst, 0))
end = time.time() + 1
while time.time() < end:
    try:
        data, peer = s.recvfrom(2048)
    except socket.timeout:
        break
    ihl = (data[0] & 0x0F) * 4
    kind, _, _, got, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
    if peer[0] == dst and kind == 0 and got == ident:
        sys.exit(0)
sys.exit(1)
`;

interface NftItem {
  rule?: { chain: string; comment?: string; expr: unknown[] };
}

describe(
  'a managed candidate gateway accepts the checks of the routes naming it',
  { timeout: T },
  () => {
    const fleet = useLab(3);
    const server = useTestServer(() => {
      const inventory = load(readFileSync(fleet.lab.inventoryPath, 'utf8')) as Inventory;
      // h2's firewall is routeplane's from the start, without a rule (input policy drop).
      inventory.lab.hosts.h2!.routeplane_firewall_managed = true;
      const path = `${fleet.lab.inventoryPath}.failover-checks.yml`;
      writeFileSync(path, dump(inventory));
      // Confirms are tested in firewall-confirm*.test.ts; here they would only cost time.
      return { INVENTORY: path, FIREWALL_CONFIRM_S: '0' };
    }, T);
    const h = (name: string) => findHost(fleet.lab, name);

    /** h2's routeplane table as nft -j lists it, or null when it has none. */
    const table = async (): Promise<NftItem[] | null> => {
      const r = await execa(
        'ip',
        ['netns', 'exec', h('h2').netns, 'nft', '-j', 'list', 'table', 'inet', 'routeplane'],
        { reject: false },
      );
      if (r.exitCode !== 0) return null;
      return (JSON.parse(r.stdout) as { nftables: NftItem[] }).nftables;
    };
    /** The input rules of h2's table carrying the failover checks' comment, as JSON text. */
    const checkRules = async () =>
      ((await table()) ?? [])
        .filter((i) => i.rule?.chain === 'input' && i.rule.comment === COMMENT)
        .map((i) => JSON.stringify(i.rule!.expr));
    const echo = async (from: string, to: string) =>
      (
        await execa('ip', ['netns', 'exec', h(from).netns, 'python3', '-c', ECHO, to], {
          reject: false,
        })
      ).exitCode === 0;

    /** FailoverChecks over the server's own database and inventory (what wiring builds). */
    const failoverChecks = () => {
      const { db, inventory, work } = server.services;
      const routes = new RoutesStore(db.knex, work);
      const checks = new FailoverChecks({
        knex: db.knex,
        inventory,
        firewall: new FirewallStore(db.knex, work),
        work,
        candidateRoutes: () => routes.candidateRoutes(),
        logger: createLogger('silent'),
      });
      return { routes, checks };
    };

    let routeId = '';

    it('when h2 is managed with no route through it, then its input drops h1’s echo requests and connections to port 22', async () => {
      await poll('h2’s routeplane table', async () => ((await table()) ? true : undefined));
      expect(await checkRules()).toEqual([]);
      expect(await echo('h1', h('h2').ipv4)).toBe(false);
      expect(await tcpReachable(h('h1'), h('h2'), 22)).toBe(false);
      // h3 is not managed: it answers h1.
      expect(await echo('h1', h('h3').ipv4)).toBe(true);
    });

    it('when a route on h1 has candidates h2 and h3 checked by icmp and tcp/22, then h2’s table accepts both from h1 and h1’s checks get through', async () => {
      const res = await server.request('POST', '/v1/routes', {
        token: 'operator',
        body: {
          host: 'h1',
          to: TO,
          via: [h('h2').ipv4, h('h3').ipv4],
          health_check: [{ type: 'icmp' }, { type: 'tcp', port: 22 }],
        },
      });
      expect(res.status, res.text).toBe(201);
      routeId = res.body.id as string;
      // h2 forwards nothing by default (forward policy drop): the answer says so.
      expect(res.body.warnings).toEqual([expect.stringMatching(/is h2, whose firewall/)]);
      const rules = await poll('the failover checks in h2’s table', async () => {
        const found = await checkRules();
        return found.length === 2 ? found : undefined;
      });
      const [echoRule, tcpRule] = [
        rules.find((r) => r.includes('echo-request')),
        rules.find((r) => r.includes('"dport"')),
      ];
      for (const rule of [echoRule, tcpRule]) {
        expect(rule).toBeDefined();
        expect(rule).toContain(`"saddr"}},"right":"${h('h1').ipv4}"`);
        expect(rule).toContain(`"daddr"}},"right":"${h('h2').ipv4}"`);
      }
      expect(tcpRule).toContain('"right":22');
      expect(await echo('h1', h('h2').ipv4)).toBe(true);
      expect(await tcpReachable(h('h1'), h('h2'), 22)).toBe(true);
      // Only the checked gateway address and protocols: h3 does not echo-request h2.
      expect(await echo('h3', h('h2').ipv4)).toBe(false);
      // Not a rule: nothing routeplane lists as one, and no drift.
      const fw = await server.request('GET', '/v1/hosts/h2/firewall?refresh=true');
      expect(fw.status, fw.text).toBe(200);
      expect((fw.body.rules as { rule_id: string | null }[]).map((r) => r.rule_id)).not.toContain(
        'failover-checks',
      );
      expect((fw.body.rules as { rule_id: string | null }[]).every((r) => r.rule_id === null)).toBe(
        true,
      );
    });

    it('when h2’s firewall is previewed, then it warns that its forward policy drops the route’s destination', async () => {
      const res = await server.request('POST', '/v1/hosts/h2/firewall/preview', {
        token: 'operator',
      });
      expect(res.status, res.text).toBe(200);
      expect(res.body.valid).toBe(true);
      expect(res.body.table).toContain(COMMENT);
      const warning = (res.body.warnings as string[]).find((w) => w.includes(routeId));
      expect(warning).toMatch(/forward policy of drop/);
      expect(warning).toContain(TO);
    });

    it('when the warnings of a new candidate route are asked, then h2 is named; once a forward accept covers the destination, nothing', async () => {
      const { routes, checks } = failoverChecks();
      const route = (await routes.get(routeId))!;
      const [warning, ...more] = await checks.warnings([route]);
      expect(more).toEqual([]);
      expect(warning).toContain(`is h2`);
      expect(warning).toContain(TO);
      const rule = await server.request('POST', '/v1/firewall/rules', {
        token: 'operator',
        body: { host: 'h2', chain: 'forward', family: 'ip', dst: [TO], action: 'accept' },
      });
      expect(rule.status, rule.text).toBe(201);
      expect(await checks.warnings([route])).toEqual([]);
      expect(await checks.previewWarnings('h2')).toEqual([]);
      // The rule's apply re-rendered h2: the checks' accepts are still there.
      expect(await checkRules()).toHaveLength(2);
    });

    it('when h1’s addresses change (or are first read), then h2 owes an apply to follow them; unchanged, nothing', async () => {
      const { checks } = failoverChecks();
      const { db } = server.services;
      const gen = async () =>
        Number(
          (await db.knex('host_work').where({ host: 'h2' }).first('desired_gen'))!.desired_gen,
        );
      const address = (a: string) => ({
        ifname: 'eth0',
        family: 'inet' as const,
        address: a,
        prefixlen: 24,
        scope: 'global',
      });
      const before = await gen();
      await checks.addressesChanged('h1', [address(h('h1').ipv4)]);
      expect(await gen()).toBe(before + 1);
      await checks.addressesChanged('h1', [address(h('h1').ipv4)]);
      expect(await gen()).toBe(before + 1);
      await checks.addressesChanged('h1', [address(h('h1').ipv4), address('192.0.2.77')]);
      expect(await gen()).toBe(before + 2);
      // h3 has no candidate route: its addresses are nobody's source.
      await checks.addressesChanged('h3', [address('192.0.2.78')]);
      expect(await gen()).toBe(before + 2);
    });

    it('when the route is deleted, then the accepts leave h2’s table and h1’s checks are dropped again', async () => {
      const res = await server.request('DELETE', `/v1/routes/${routeId}`, { token: 'operator' });
      expect(res.status, res.text).toBe(200);
      await poll('the failover checks to leave h2’s table', async () =>
        (await checkRules()).length === 0 ? true : undefined,
      );
      expect(await table()).not.toBeNull();
      expect(await echo('h1', h('h2').ipv4)).toBe(false);
      expect(await tcpReachable(h('h1'), h('h2'), 22)).toBe(false);
      expect((await nsExec(fleet.lab, 'h1', ['ip', 'route', 'show', TO])).trim()).toBe('');
      // h2 owed an apply for the route's creation and for its deletion only: settling the
      // route on h1 (twice) changed nothing of its checks.
      await new Promise((r) => setTimeout(r, 500));
      const bumps = server.logs.filter((l) => l.includes('"firewall.failover_checks_bumped"'));
      expect(bumps).toHaveLength(2);
      expect(bumps.every((l) => l.includes('"hosts":["h2"]'))).toBe(true);
    });
  },
);
