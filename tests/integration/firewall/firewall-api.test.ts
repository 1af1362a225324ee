import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labSsh, startSshd, stopSshd } from '../../../src/lab/index.ts';
import { useLab } from '../../helpers/lab.ts';
import { tcpListeners, tcpReachable } from '../../helpers/tcp-probe.ts';
import { expectProblem } from '../../helpers/problem.ts';
import { poll } from '../../helpers/routes.ts';
import { useTestServer } from '../../helpers/server.ts';

// Firewall rules through the API, applied by the reconciler's apply run to lab host h1, seen
// as real packets: h2 connects to listeners in h1; the controller (this process) is
// management and must keep reaching h1's sshd under every rule set.
const T = 120_000;

describe('firewall rules through the API, on a lab of 2 hosts', { timeout: T }, () => {
  const fleet = useLab(2);
  // Each run's SSH connections close with it, so a stopped sshd fails the next run.
  const server = useTestServer(
    () => ({ INVENTORY: fleet.lab.inventoryPath, SSH_MASTER_IDLE_S: '0' }),
    T,
  );
  let stopListeners: (() => Promise<void>) | undefined;
  const h1 = () => fleet.lab.hosts[0]!;
  const h2 = () => fleet.lab.hosts[1]!;

  beforeAll(async () => {
    stopListeners = await tcpListeners(h1(), [8080, 8081]);
  }, T);

  afterAll(async () => {
    await startSshd(fleet.lab, 'h2');
    await stopListeners?.();
  });

  const reachable = (port: number) => tcpReachable(h2(), h1(), port);

  const tables = async () =>
    (await execa('ip', ['netns', 'exec', h1().netns, 'nft', 'list', 'tables'])).stdout;
  const open8080 = {
    host: 'h1',
    chain: 'input',
    protocol: 'tcp',
    dport: ['8080'],
    action: 'accept',
  };
  let ruleId = '';

  it('when a host has no rule, then routeplane leaves its firewall alone', async () => {
    expect(await tables()).not.toContain('routeplane');
    expect(await reachable(8080)).toBe(true);
    expect(await reachable(8081)).toBe(true);
    const read = await server.request('GET', '/v1/hosts/h1/firewall?refresh=true', {
      token: 'viewer',
    });
    expect(read.status, read.text).toBe(200);
    expect(read.body).toMatchObject({
      host: 'h1',
      managed: false,
      available: true,
      present: false,
      rules: [],
      table: null,
      error: null,
    });
  });

  it('when the first rule opens tcp/8080, then it is 201 in_sync, only that port and management stay reachable', async () => {
    const res = await server.request('POST', '/v1/firewall/rules', {
      token: 'operator',
      body: { ...open8080, comment: 'the web app' },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({
      host: 'h1',
      chain: 'input',
      family: 'inet',
      protocol: 'tcp',
      dport: ['8080'],
      action: 'accept',
      priority: 100,
      status: 'active',
      comment: 'the web app',
      sync: { state: 'in_sync', error: null },
    });
    ruleId = res.body.id;
    expect(await tables()).toContain('table inet routeplane');
    expect(await reachable(8080)).toBe(true);
    expect(await reachable(8081)).toBe(false);
    expect(await labSsh(fleet.lab, 'h1', ['echo', 'management'])).toBe('management');
  });

  it('when the host’s firewall is read, then routeplane’s table shows the rule by its id, and the ruleset its text', async () => {
    const read = await poll(
      'the gathered table',
      async () => {
        const res = await server.request('GET', '/v1/hosts/h1/firewall?refresh=true', {
          token: 'viewer',
        });
        return res.status === 200 && res.body.present ? res : undefined;
      },
      15_000,
      500,
    );
    expect(read.body).toMatchObject({ managed: true, available: true, present: true });
    expect(read.body.rules).toContainEqual(
      expect.objectContaining({ chain: 'input', rule_id: ruleId }),
    );
    expect(read.body.ruleset).toContain('table inet routeplane');
    expect(read.body.ruleset).toContain(`rp:${ruleId}`);
  });

  it('when the identical rule is sent again (another comment), then it is 200 with the existing rule', async () => {
    const res = await server.request('POST', '/v1/firewall/rules', {
      token: 'operator',
      body: { ...open8080, comment: 'again' },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body.id).toBe(ruleId);
    const rows = await server.database.db.knex('firewall_rules').where({ host: 'h1' });
    expect(rows).toHaveLength(1);
  });

  it('when the rule is paused, then its port closes; resumed, it opens again', async () => {
    const paused = await server.request('POST', `/v1/firewall/rules/${ruleId}/pause`, {
      token: 'operator',
    });
    expect(paused.status, paused.text).toBe(200);
    expect(paused.body).toMatchObject({ status: 'paused', sync: { state: 'in_sync' } });
    expect(await reachable(8080)).toBe(false);
    const resumed = await server.request('POST', `/v1/firewall/rules/${ruleId}/resume`, {
      token: 'operator',
    });
    expect(resumed.status, resumed.text).toBe(200);
    expect(await reachable(8080)).toBe(true);
  });

  it('when the rule is deleted, then its port closes, the table stays (the host is still managed), and its events tell the story', async () => {
    const res = await server.request('DELETE', `/v1/firewall/rules/${ruleId}`, {
      token: 'operator',
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body.status).toBe('deleted');
    expect(await reachable(8080)).toBe(false);
    expect(await tables()).toContain('table inet routeplane');
    const events = await server.request('GET', `/v1/firewall/rules/${ruleId}/events`, {
      token: 'viewer',
    });
    expect(events.status).toBe(200);
    expect(events.body.items.map((e: { action: string }) => e.action)).toEqual([
      'create',
      'pause',
      'resume',
      'delete',
    ]);
  });

  it('when a rule has a delete_at, then its comment can change, it closes on time, and history shows it expired', async () => {
    const res = await server.request('POST', '/v1/firewall/rules', {
      token: 'operator',
      body: { ...open8080, delete_at: new Date(Date.now() + 20_000).toISOString() },
    });
    expect(res.status, res.text).toBe(201);
    const id = res.body.id as string;
    expect(await reachable(8080)).toBe(true);
    const patched = await server.request('PATCH', `/v1/firewall/rules/${id}`, {
      token: 'operator',
      body: { comment: 'until the demo ends' },
    });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toMatchObject({ comment: 'until the demo ends', status: 'active' });
    await poll(
      'the rule expired and applied',
      async () => {
        const r = await server.request('GET', `/v1/firewall/rules/${id}`, { token: 'viewer' });
        return r.body.status === 'expired' && r.body.sync.state === 'in_sync' ? r : undefined;
      },
      45_000,
      500,
    );
    expect(await reachable(8080)).toBe(false);
    const history = await server.request('GET', '/v1/firewall/rules/history?host=h1', {
      token: 'viewer',
    });
    expect(history.status, history.text).toBe(200);
    expect(history.body.items[0]).toMatchObject({
      id,
      status: 'expired',
      removed_reason: 'expired',
      removed_by: 'scheduler',
    });
  });

  it('when a rule has ports without tcp or udp, dnat in input, or a v6 source in an ip rule, then 400 names each field and nothing is stored', async () => {
    const before = await server.database.db.knex('firewall_rules').count({ n: '*' });
    const res = await server.request('POST', '/v1/firewall/rules', {
      token: 'operator',
      body: [
        { host: 'h1', chain: 'input', protocol: 'any', dport: ['22'], action: 'accept' },
        { host: 'h1', chain: 'input', action: 'dnat', to: { address: '192.0.2.1' } },
        { host: 'h1', chain: 'input', family: 'ip', src: ['2001:db8::/32'], action: 'drop' },
      ],
    });
    expectProblem(res, 400, 'validation');
    const fields = (res.body.errors as { field: string }[]).map((e) => e.field);
    expect(fields).toEqual(['/body/0/dport']);
    expect(await server.database.db.knex('firewall_rules').count({ n: '*' })).toEqual(before);
    for (const [i, body, field] of [
      [
        1,
        { host: 'h1', chain: 'input', action: 'dnat', to: { address: '192.0.2.1' } },
        '/body/action',
      ],
      [
        2,
        { host: 'h1', chain: 'input', family: 'ip', src: ['2001:db8::/32'], action: 'drop' },
        '/body/src/0',
      ],
    ] as const) {
      const one = await server.request('POST', '/v1/firewall/rules', { token: 'operator', body });
      expectProblem(one, 400, 'validation');
      expect(JSON.stringify(one.body.errors), `item ${i}`).toContain(field);
    }
  });

  it('when a rule would cut management (a blocklist naming the controller, an output drop of SSH answers, a DNAT of tcp/22), then 409 says why and nothing is stored', async () => {
    const before = await server.database.db.knex('firewall_rules').count({ n: '*' });
    const controller = `${fleet.lab.gatewayV4}/32`;
    for (const body of [
      { host: 'h1', chain: 'input', src: [controller, '192.0.2.0/24'], action: 'drop' },
      { host: 'h1', chain: 'output', protocol: 'tcp', sport: ['1-1024'], action: 'reject' },
      {
        host: 'h1',
        chain: 'prerouting',
        protocol: 'tcp',
        dport: ['22'],
        action: 'dnat',
        to: { address: '127.0.0.1', port: 2222 },
      },
    ]) {
      const res = await server.request('POST', '/v1/firewall/rules', { token: 'operator', body });
      expectProblem(res, 409, 'conflict', { detail: /refused on h1: it would/ });
      expect(res.body.management_sources).toContain(fleet.lab.gatewayV4);
    }
    expect(await server.database.db.knex('firewall_rules').count({ n: '*' })).toEqual(before);
  });

  it('when a host with live rules is released, then 409; once they are gone, release removes only routeplane’s table', async () => {
    const again = await server.request('POST', '/v1/firewall/rules', {
      token: 'operator',
      body: open8080,
    });
    expect(again.status, again.text).toBe(201);
    const refused = await server.request('DELETE', '/v1/hosts/h1/firewall', { token: 'operator' });
    expectProblem(refused, 409, 'conflict');
    await server.request('DELETE', `/v1/firewall/rules/${again.body.id}`, { token: 'operator' });
    const released = await server.request('DELETE', '/v1/hosts/h1/firewall', { token: 'operator' });
    expect(released.status, released.text).toBe(200);
    expect(released.body).toEqual({ host: 'h1', released: true });
    await poll(
      'routeplane table gone',
      async () => ((await tables()).includes('routeplane') ? undefined : true),
      10_000,
    );
    expect(await reachable(8081)).toBe(true);
  });

  it('when a viewer tries to create a rule, then 403 and nothing is stored', async () => {
    const res = await server.request('POST', '/v1/firewall/rules', {
      token: 'viewer',
      body: open8080,
    });
    expectProblem(res, 403, 'forbidden');
  });

  it('when a rule names a group, then it is created once per member and answered as a batch', async () => {
    const res = await server.request('POST', '/v1/firewall/rules', {
      token: 'operator',
      body: { host: 'lab', chain: 'input', protocol: 'tcp', dport: ['9999'], action: 'accept' },
    });
    expect(res.status, res.text).toBe(201);
    const items = res.body.items as { outcome: string; rule: { id: string; host: string } }[];
    expect(items.map((i) => [i.outcome, i.rule.host])).toEqual([
      ['created', 'h1'],
      ['created', 'h2'],
    ]);
    expect(res.body.counts).toEqual({ in_sync: 2 });
    for (const i of items) {
      const gone = await server.request('DELETE', `/v1/firewall/rules/${i.rule.id}`, {
        token: 'operator',
      });
      expect(gone.status, gone.text).toBe(200);
    }
  });

  it('when a rule names a host or group the inventory does not have, then 400 names the host field', async () => {
    const res = await server.request('POST', '/v1/firewall/rules', {
      token: 'operator',
      body: { host: 'h9', chain: 'input', action: 'accept' },
    });
    expectProblem(res, 400, 'validation', { field: '/body/host' });
  });

  it('when removing the table fails (the host is down), then release is a 502 naming the host and the error', async () => {
    const made = await server.request('POST', '/v1/firewall/rules', {
      token: 'operator',
      body: { host: 'h2', chain: 'input', protocol: 'tcp', dport: ['8080'], action: 'accept' },
    });
    expect(made.status, made.text).toBe(201);
    const gone = await server.request('DELETE', `/v1/firewall/rules/${made.body.id}`, {
      token: 'operator',
    });
    expect(gone.status, gone.text).toBe(200);
    await stopSshd(fleet.lab, 'h2');
    const res = await server.request('DELETE', '/v1/hosts/h2/firewall', { token: 'operator' });
    expectProblem(res, 502, 'apply-failed');
    expect(res.body).toMatchObject({
      host: 'h2',
      run_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
    await startSshd(fleet.lab, 'h2');
  });
});
