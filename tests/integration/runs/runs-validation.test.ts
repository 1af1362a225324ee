import { lstat, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CountingRunner } from '../../helpers/runs.ts';
import { execa } from 'execa';
import {
  FIXTURE_CATALOG,
  REPO,
  startTestServer,
  TOKENS,
  type TestServer,
} from '../../helpers/server.ts';

// No ansible here: a counting runner stands in, so "nothing ran" is a number we can check.
// Hosts are names only; nothing is ever contacted.
const INVENTORY = `
lab:
  hosts:
    h1: {}
    h2: {}
    h3: {}
  children:
    edge:
      hosts:
        h3: {}
empty_group:
  hosts: {}
workstation:
  hosts:
    controller:
      ansible_connection: local
`;

describe('POST /v1/runs validation, with a counting runner', () => {
  const runner = new CountingRunner();
  let dir: string;
  let server: TestServer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'runs-validation-'));
    await writeFile(path.join(dir, 'hosts.yml'), INVENTORY);
    server = await startTestServer({ INVENTORY: path.join(dir, 'hosts.yml') }, { runner });
  });

  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    runner.specs.length = 0;
    await server.database.db.knex('runs').delete();
  });

  const runRows = async () => Number((await server.database.db.knex('runs').count())[0]!.count);

  async function expectRejected(body: unknown, field: string, status = 400) {
    const res = await server.request('POST', '/v1/runs?wait=5', { body });
    expect(res.status, res.text).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    if (status === 400) {
      expect(res.body.type).toBe('https://routeplane.dev/problems/validation');
      expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    }
    expect(runner.specs).toEqual([]);
    expect(await runRows()).toBe(0);
    return res.body;
  }

  it('when the request is valid, then the runner gets the resolved hosts and the extravars as sent', async () => {
    const res = await server.request('POST', '/v1/runs?wait=5', {
      body: { playbook: 'net/addresses', limit: ['edge', 'h1'], extravars: { marker: 'x y' } },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({
      playbook: 'net/addresses',
      hosts: ['h1', 'h3'],
      limit: ['edge', 'h1'],
      status: 'succeeded',
      requested_by: 'admin',
    });
    expect(runner.specs).toHaveLength(1);
    expect(runner.specs[0]).toMatchObject({
      runId: res.body.id,
      playbookRoot: FIXTURE_CATALOG,
      playbookFile: path.join('net', 'addresses.yml'),
      hosts: ['h1', 'h3'],
      extravars: { marker: 'x y' },
    });
    expect(await runRows()).toBe(1);
  });

  it('when limit is absent, then it means every host, and the local host among them makes it 409 with nothing run', async () => {
    const res = await server.request('POST', '/v1/runs?wait=5', {
      body: { playbook: 'ping' },
    });
    expect(res.status, res.text).toBe(409);
    expect(res.body.detail).toMatch(/controller is the machine routeplane runs on/);
    expect(runner.specs).toEqual([]);
  });

  describe('when the playbook name', () => {
    it.each([
      ['climbs out of the catalog', '../x'],
      ['is an absolute path', '/etc/passwd'],
      ['has an empty path segment', 'a//b'],
      ['has a dot', 'a.b'],
      ['ends in .yml', 'ping.yml'],
      ['is empty', ''],
      ['has a NUL byte', 'ping\u0000'],
    ])('%s (%j), then 400 names /body/playbook and nothing runs', async (_why, playbook) => {
      await expectRejected({ playbook }, '/body/playbook');
    });

    it('is a catalog symlink to a file outside it (escape -> /etc/passwd), then 400 names /body/playbook and nothing runs', async () => {
      const escape = await lstat(path.join(FIXTURE_CATALOG, 'escape.yml'));
      expect(escape.isSymbolicLink(), 'fixture escape.yml must be a symlink').toBe(true);
      const problem = await expectRejected({ playbook: 'escape' }, '/body/playbook');
      expect(problem.detail).toMatch(/outside the playbook catalog/);
    });

    it('is not in the catalog, then 400 names /body/playbook and nothing runs', async () => {
      const problem = await expectRejected({ playbook: 'nosuch' }, '/body/playbook');
      expect(problem.detail).toMatch(/no playbook named 'nosuch'/);
    });

    it('is a directory of the catalog, then 400 names /body/playbook and nothing runs', async () => {
      await expectRejected({ playbook: 'net' }, '/body/playbook');
    });
  });

  describe('when the limit', () => {
    it.each([
      ['is an @file pattern', ['@/etc/passwd'], '/body/limit/0'],
      ['names an unknown host after a known one', ['h1', 'nosuch'], '/body/limit/1'],
      ['is a comma-joined list', ['h1,h2'], '/body/limit/0'],
      ['is a wildcard pattern', ['h*'], '/body/limit/0'],
      ['is an exclusion pattern', ['all:!h1'], '/body/limit/0'],
      ['is a regex pattern', ['~h.*'], '/body/limit/0'],
      ['is an empty list', [], '/body/limit'],
      ['is a group without hosts', ['empty_group'], '/body/limit'],
    ])('%s (%j), then 400 names %s and nothing runs', async (_why, limit, field) => {
      await expectRejected({ playbook: 'ping', limit }, field);
    });

    it('names the local host, then 409 and nothing runs', async () => {
      const problem = await expectRejected({ playbook: 'ping', limit: ['controller'] }, '', 409);
      expect(problem.detail).toMatch(/ALLOW_LOCAL_WRITES/);
    });
  });

  describe('when the extravars', () => {
    it.each([
      ['set a connection variable', { ansible_connection: 'local' }, 'ansible_connection'],
      ['set any ansible_ variable', { ansible_become: true }, 'ansible_become'],
      ['have an upper-case, dashed key', { 'Bad-Key': 1 }, 'Bad-Key'],
      ['have a key starting with a digit', { '1x': 1 }, '1x'],
      ['have a key with a space', { 'a b': 1 }, 'a b'],
    ])(
      '%s, then 400 names /body/extravars/<key> and nothing runs',
      async (_why, extravars, key) => {
        await expectRejected(
          { playbook: 'ping', limit: ['h1'], extravars },
          `/body/extravars/${key}`,
        );
      },
    );

    it('template inventory_hostname into a command (the controller-shell attack), then 400 and nothing runs', async () => {
      const problem = await expectRejected(
        {
          playbook: 'ping',
          limit: ['h1'],
          extravars: { inventory_hostname: "{{ lookup('pipe','id > /tmp/x') }}" },
        },
        '/body/extravars/inventory_hostname',
      );
      expect(problem.detail).toMatch(/magic variable/);
    });

    it.each([
      'inventory_hostname',
      'hostvars',
      'groups',
      'group_names',
      'omit',
      'playbook_dir',
      'environment',
      'ansible_host',
    ])(
      'set %s on a playbook that declares variables, then 400 names it as reserved',
      async (key) => {
        const problem = await expectRejected(
          { playbook: 'echo', limit: ['h1'], extravars: { text: 'x', [key]: 'y' } },
          `/body/extravars/${key}`,
        );
        expect(problem.detail).toMatch(/cannot be set/);
      },
    );

    it('are given to a playbook without a sidecar, then 400 says it accepts none', async () => {
      const problem = await expectRejected(
        { playbook: 'ping', limit: ['h1'], extravars: { greeting: 'hello' } },
        '/body/extravars/greeting',
      );
      expect(problem.detail).toMatch(/accepts no extra variables/);
    });

    it('name a variable the sidecar does not declare, then 400 lists what it accepts', async () => {
      const problem = await expectRejected(
        { playbook: 'echo', limit: ['h1'], extravars: { text: 'x', colour: 'red' } },
        '/body/extravars/colour',
      );
      expect(problem.detail).toMatch(/accepts text, items_list, options, count/);
    });

    it.each([
      ['a number for a str', { text: 5 }, 'text', /a string/],
      ['a string for a list', { text: 'x', items_list: 'a,b' }, 'items_list', /a list/],
      ['a list for a dict', { text: 'x', options: [] }, 'options', /an object/],
      ['a fraction for an int', { text: 'x', count: 1.5 }, 'count', /an integer/],
      ['a string for an int', { text: 'x', count: '2' }, 'count', /an integer/],
    ])('hold %s, then 400 names the key and the type', async (_why, extravars, key, why) => {
      const problem = await expectRejected(
        { playbook: 'echo', limit: ['h1'], extravars },
        `/body/extravars/${key}`,
      );
      expect(problem.detail).toMatch(why);
    });

    it('leave out a required variable, then 400 names it', async () => {
      await expectRejected(
        { playbook: 'echo', limit: ['h1'], extravars: { count: 1 } },
        '/body/extravars/text',
      );
    });

    it.each([
      [
        'in a dict',
        { text: 'x', options: { a: { __ansible_vault: '$ANSIBLE_VAULT;1.1;AES256' } } },
        '/body/extravars/options/a/__ansible_vault',
      ],
      [
        'in a list',
        { text: 'x', items_list: [1, { __ansible_unsafe: 'y' }] },
        '/body/extravars/items_list/1/__ansible_unsafe',
      ],
      [
        'at the top of a dict',
        { text: 'x', options: { __ansible_vault: 'z' } },
        '/body/extravars/options/__ansible_vault',
      ],
    ])(
      'hold a key starting with __ansible %s, then 400 names where',
      async (_why, extravars, field) => {
        await expectRejected({ playbook: 'echo', limit: ['h1'], extravars }, field);
      },
    );

    it('nest a list 5,000 levels deep, then 400 names the depth instead of exhausting the stack', async () => {
      const deep = '['.repeat(5000) + ']'.repeat(5000);
      const res = await server.request('POST', '/v1/runs?wait=5', {
        rawBody: `{"playbook":"echo","limit":["h1"],"extravars":{"text":"x","items_list":${deep}}}`,
        headers: { 'content-type': 'application/json' },
      });
      expect(res.status, res.text).toBe(400);
      expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual([
        `/body/extravars/items_list${'/0'.repeat(32)}`,
      ]);
      expect(res.body.detail).toMatch(/deeper than 32 levels/);
      expect(runner.specs).toEqual([]);
      expect(await runRows()).toBe(0);
    });

    it('are valid, then the runner gets them with the declared defaults filled in', async () => {
      const res = await server.request('POST', '/v1/runs?wait=5', {
        body: { playbook: 'echo', limit: ['h1'], extravars: { text: '{{ 7 * 7 }}' } },
      });
      expect(res.status, res.text).toBe(201);
      expect(runner.specs.map((s) => s.extravars)).toEqual([
        { text: '{{ 7 * 7 }}', items_list: [], options: {}, count: 0 },
      ]);
    });

    it('are not an object, then 400 names /body/extravars and nothing runs', async () => {
      await expectRejected(
        { playbook: 'ping', limit: ['h1'], extravars: ['x'] },
        '/body/extravars',
      );
    });
  });

  it('when a viewer lists the playbooks, then each comes with the variables its sidecar declares, and no sidecar or escaping symlink is listed', async () => {
    const res = await server.request('GET', '/v1/playbooks', { token: 'viewer' });
    expect(res.status, res.text).toBe(200);
    const names = res.body.items.map((p: { name: string }) => p.name);
    expect(names).toEqual(['echo', 'mixed', 'net/addresses', 'pause', 'ping', 'vault']);
    const echo = res.body.items.find((p: { name: string }) => p.name === 'echo');
    expect(echo).toEqual({
      name: 'echo',
      error: null,
      vars: [
        { name: 'text', type: 'str', required: true, description: 'A string, printed as sent' },
        {
          name: 'items_list',
          type: 'list',
          required: false,
          default: [],
          description: 'A list, printed as sent',
        },
        {
          name: 'options',
          type: 'dict',
          required: false,
          default: {},
          description: 'An object, printed as sent',
        },
        {
          name: 'count',
          type: 'int',
          required: false,
          default: 0,
          description: 'An integer; the playbook prints it plus one',
        },
      ],
    });
    expect(res.body.items.find((p: { name: string }) => p.name === 'ping').vars).toEqual([]);
  });

  it('when a person lists the catalog with the CLI, then each playbook shows its variables and ping accepts none', async () => {
    const r = await execa('node', [path.join(REPO, 'bin/routeplane.js'), 'runs', 'playbooks'], {
      reject: false,
      env: { ROUTEPLANE_API: server.url, ROUTEPLANE_TOKEN: TOKENS.viewer },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^PLAYBOOK\s+VARIABLE\s+TYPE\s+REQUIRED\s+DEFAULT\s+DESCRIPTION/);
    expect(lines.find((l) => /^echo\s+text\s+str\s+yes/.test(l))).toBeDefined();
    expect(lines.find((l) => /^echo\s+count\s+int\s+no\s+0\s/.test(l))).toBeDefined();
    expect(lines.find((l) => /^ping\s.*accepts no extra variables/.test(l))).toBeDefined();
  });

  it('when the body has a field the contract does not know, then 400 and nothing runs', async () => {
    const problem = await expectRejected(
      { playbook: 'ping', limit: ['h1'], inventory: '/etc/passwd' },
      '/body/inventory',
    );
    expect(problem.detail).toMatch(/inventory/);
  });

  it.each([['viewer'], ['operator']] as const)(
    'when a %s token asks for a run, then 403 and nothing runs',
    async (token) => {
      const res = await server.request('POST', '/v1/runs', {
        token,
        body: { playbook: 'ping', limit: ['h1'] },
      });
      expect(res.status).toBe(403);
      expect(runner.specs).toEqual([]);
      expect(await runRows()).toBe(0);
    },
  );

  it('when no token is sent, then 401 and nothing runs', async () => {
    const res = await server.request('POST', '/v1/runs', {
      token: null,
      body: { playbook: 'ping', limit: ['h1'] },
    });
    expect(res.status).toBe(401);
    expect(runner.specs).toEqual([]);
  });
});
