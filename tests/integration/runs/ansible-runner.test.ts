import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/logger.ts';
import { AnsibleRunner } from '../../../src/runs/ansible-runner.ts';
import type { RunSpec } from '../../../src/runs/types.ts';
import { useLab } from '../../helpers/lab.ts';
import {
  isRunning,
  processesInGroup,
  sleep,
  testRunnerConfig,
  type RunnerConfig,
} from '../../helpers/runs.ts';
import { REPO, startTestServer } from '../../helpers/server.ts';

const T = 60_000;
const silent = createLogger('silent');

// This file is the spawn mode's own; the warm runner's are in warm-runner.test.ts.
const runnerConfig = (overrides: Partial<RunnerConfig>) =>
  testRunnerConfig({ runnerMode: 'spawn', sshMasterIdleMs: 0, ...overrides });

const BROKEN_YAML = '- hosts: all\n  tasks:\n    - name: x\n      ping:\n   bad: [\n';

describe('AnsibleRunner, with ansible-playbook dying before it prints JSON', { timeout: T }, () => {
  const fleet = useLab(1);
  let dir: string;
  let catalog: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'runner-test-'));
    catalog = path.join(dir, 'catalog');
    await mkdir(catalog);
    await writeFile(path.join(catalog, 'broken.yml'), BROKEN_YAML);
    await writeFile(
      path.join(catalog, 'chatty.yml'),
      await readFile(path.join(REPO, 'tests/fixtures/ansible-json/chatty.playbook.yml'), 'utf8'),
    );
    await writeFile(
      path.join(catalog, 'ping.yml'),
      await readFile(path.join(REPO, 'tests/fixtures/catalog/ping.yml'), 'utf8'),
    );
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const spec = (playbookFile: string, hosts: string[]): RunSpec => ({
    runId: 'test',
    playbookRoot: catalog,
    playbookFile,
    hosts,
    extravars: {},
  });

  it('when the playbook has a YAML syntax error, then the run is an error with rc 4 and the stderr in error and log', async () => {
    const runner = new AnsibleRunner(
      runnerConfig({ inventoryPath: fleet.lab.inventoryPath }),
      silent,
    );
    const outcome = await runner.start(spec('broken.yml', ['h1'])).done;
    expect(outcome).toMatchObject({ status: 'error', rc: 4, summary: {}, results: [] });
    expect(outcome.error).toMatch(/^ERROR! We were unable to read either as JSON nor YAML/);
    expect(outcome.error).toMatch(
      /Syntax Error while loading YAML\.\n\s+did not find expected key/,
    );
    expect(outcome.log).toMatch(/ERROR!/);
    expect(outcome.log).toContain('broken.yml');
  });

  it('when the hosts match nothing in the inventory, then the run is an error with rc 1 and ansible says why', async () => {
    const runner = new AnsibleRunner(
      runnerConfig({ inventoryPath: fleet.lab.inventoryPath }),
      silent,
    );
    const outcome = await runner.start(spec('ping.yml', ['nosuch'])).done;
    expect(outcome).toMatchObject({ status: 'error', rc: 1, summary: {} });
    expect(outcome.error).toMatch(/no hosts to target/);
    expect(outcome.log).toMatch(/Could not match supplied host pattern, ignoring: nosuch/);
  });

  it('when ansible-playbook cannot be started, then the run is an error that says so', async () => {
    const runner = new AnsibleRunner(
      runnerConfig({
        inventoryPath: fleet.lab.inventoryPath,
        ansiblePlaybook: path.join(dir, 'no-such-ansible-playbook'),
      }),
      silent,
    );
    const outcome = await runner.start(spec('ping.yml', ['h1'])).done;
    expect(outcome).toMatchObject({ status: 'error', rc: null });
    expect(outcome.error).toMatch(/could not be started: .*ENOENT/);
  });

  it('when a playbook prints MiBs of results and stderr noise, then the log stays within RUN_LOG_MAX_BYTES and every result is there', async () => {
    const runner = new AnsibleRunner(
      runnerConfig({ inventoryPath: fleet.lab.inventoryPath, runLogMaxBytes: 4096 }),
      silent,
    );
    const outcome = await runner.start(spec('chatty.yml', ['h1'])).done;
    expect(outcome).toMatchObject({ status: 'succeeded', rc: 0, error: null });
    expect(outcome.summary.h1).toMatchObject({ status: 'ok', ok: 3, failures: 0 });
    expect(outcome.results.map((r) => `${r.task}/${r.status}`)).toEqual([
      'debug a large string many times/ok',
      'noise on stderr/ok',
      'after/ok',
    ]);
    const items = outcome.results[0]!.data.results as { msg: string }[];
    expect(items).toHaveLength(60);
    expect(items.map((i) => i.msg.length)).toEqual(items.map((_, n) => `${n}:`.length + 65536));
    expect(outcome.results[1]!.data.msg).toBe('quiet');
    expect(outcome.results[2]!.data.msg).toBe('done');
    // the log is the tail of the noise, never the results
    expect(Buffer.byteLength(outcome.log)).toBeLessThanOrEqual(4096 + 40);
    expect(outcome.log.startsWith('[... truncated ...]\n')).toBe(true);
    expect(outcome.log).toMatch(/noise line 10000$/m);
    expect(outcome.log).not.toContain('noise line 1\n');
    expect(outcome.log).not.toContain('xxxxxxxx');
  });

  describe('through the API', () => {
    it('when a catalog playbook has a syntax error, then the run row records status error, rc and stderr', async () => {
      const server = await startTestServer({
        INVENTORY: fleet.lab.inventoryPath,
        CATALOG_DIR: catalog,
      });
      try {
        const res = await server.request('POST', '/v1/runs?wait=50', {
          body: { playbook: 'broken', limit: ['h1'] },
        });
        expect(res.status, res.text).toBe(201);
        expect(res.body).toMatchObject({ status: 'error', rc: 4, summary: {}, results: [] });
        expect(res.body.error).toMatch(/Syntax Error while loading YAML/);
        const row = await server.database.db.knex('runs').where({ id: res.body.id }).first();
        expect(row).toMatchObject({ status: 'error', rc: 4, error: res.body.error });
        expect(row.log).toMatch(/ERROR!.*\n[\s\S]*did not find expected key/);
        expect(row.finished_at).not.toBeNull();
        // the process group it ran as, for a later start-up to stop if this instance died
        expect(row.pgid).toEqual(expect.any(Number));
      } finally {
        await server.close();
      }
    });

    it("when a run starts, then its workspace is under this instance's directory of this data directory", async () => {
      const record = path.join(dir, 'cwd');
      const fake = path.join(dir, 'fake-ansible-playbook');
      await writeFile(
        fake,
        `#!/bin/bash\necho "$PWD" > ${record}\necho '{"_event": "v2_playbook_on_stats", "stats": {"h1": {"ok": 1}}}'\n`,
      );
      await chmod(fake, 0o755);
      const server = await startTestServer({
        INVENTORY: fleet.lab.inventoryPath,
        CATALOG_DIR: catalog,
        ANSIBLE_PLAYBOOK: fake,
      });
      try {
        const res = await server.request('POST', '/v1/runs?wait=50', {
          body: { playbook: 'ping', limit: ['h1'] },
        });
        expect(res.body).toMatchObject({ status: 'succeeded' });
        const cwd = (await readFile(record, 'utf8')).trim();
        const mine = server.services.presence.workspaceDir!;
        expect(path.dirname(cwd)).toBe(mine);
        expect(path.basename(cwd)).toMatch(/^r\w{6}$/);
        expect(existsSync(cwd)).toBe(false);
      } finally {
        await server.close();
      }
    });
  });
});

/**
 * A stand-in for ansible-playbook, for what the runner does around the process: its argv, its
 * environment, its process group, and processes that leave the group.
 */
describe('AnsibleRunner process handling, with a stand-in ansible-playbook', { timeout: T }, () => {
  let dir: string;
  let catalog: string;
  let inventory: string;
  const strays: number[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'runner-proc-test-'));
    catalog = path.join(dir, 'catalog');
    inventory = path.join(dir, 'hosts.yml');
    await mkdir(catalog);
    await writeFile(path.join(catalog, 'play.yml'), '- hosts: all\n  tasks: []\n');
    await writeFile(inventory, 'all:\n  hosts:\n    h1: {}\n');
  });

  afterAll(async () => {
    for (const pid of strays) if (await isRunning(pid)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  async function script(name: string, body: string): Promise<string> {
    const file = path.join(dir, name);
    await writeFile(file, `#!/bin/bash\n${body}\n`);
    await chmod(file, 0o755);
    return file;
  }

  const spec = (extravars: Record<string, unknown> = {}): RunSpec => ({
    runId: 'test',
    playbookRoot: catalog,
    playbookFile: 'play.yml',
    hosts: ['h1', 'h2'],
    extravars,
  });

  // The recap ansible.posix.jsonl prints last.
  const CALLBACK_DOC = `echo '{"_event": "v2_playbook_on_stats", "stats": {"h1": {"ok": 1}}}'`;

  it('when a run starts, then argv holds only temp-dir paths and the hosts, and extravars and the vault password are in 0600 files', async () => {
    const out = path.join(dir, 'record');
    const fake = await script(
      'record.sh',
      `printf '%s\\n' "$@" > ${out}.argv\ncp -a "$PWD/." ${out}.ws/\n${CALLBACK_DOC}`,
    );
    await mkdir(`${out}.ws`);
    const password = 'vault-pw-5b7e1d';
    const runner = new AnsibleRunner(
      runnerConfig({ ansiblePlaybook: fake, inventoryPath: inventory, vaultPassword: password }),
      silent,
    );
    const outcome = await runner.start(spec({ marker: 'marker-9d2c', n: 1 })).done;
    expect(outcome).toMatchObject({ status: 'succeeded', rc: 0 });

    const argv = (await readFile(`${out}.argv`, 'utf8')).trimEnd().split('\n');
    const ws = path.dirname(path.dirname(argv[1]!));
    expect(ws).toMatch(new RegExp(`^${os.tmpdir()}/routeplane-run-`));
    expect(argv).toEqual([
      '-i',
      path.join(ws, 'inventory', 'hosts.yml'),
      '-e',
      `@${path.join(ws, 'extravars.json')}`,
      '-e',
      `@${path.join(ws, 'connection.json')}`,
      '--limit',
      'h1,h2',
      '--forks',
      '5',
      '--vault-password-file',
      path.join(ws, 'vault-password'),
      path.join(ws, 'project', 'play.yml'),
    ]);
    const copy = `${out}.ws`;
    expect(JSON.parse(await readFile(path.join(copy, 'extravars.json'), 'utf8'))).toEqual({
      marker: { __ansible_unsafe: 'marker-9d2c' },
      n: { __ansible_unsafe: 1 },
    });
    expect((await stat(path.join(copy, 'extravars.json'))).mode & 0o777).toBe(0o600);
    // routeplane's own, after the request's so they win: each host's SSH master socket
    expect(JSON.parse(await readFile(path.join(copy, 'connection.json'), 'utf8'))).toEqual({
      ansible_control_path: expect.stringMatching(
        /^\/.*\{\{ \(inventory_hostname \| hash\('sha1'\)\)\[:12\] \}\}-/,
      ),
    });
    expect(await readFile(path.join(copy, 'vault-password'), 'utf8')).toBe(`${password}\n`);
    expect((await stat(path.join(copy, 'vault-password'))).mode & 0o777).toBe(0o600);
    // the run's temp dir is gone once it has ended
    expect(existsSync(ws)).toBe(false);
  });

  it("when a run starts, then ansible's environment holds none of the server's variables", async () => {
    const out = path.join(dir, 'env');
    const fake = await script('env.sh', `cat /proc/$$/environ > ${out}\n${CALLBACK_DOC}`);
    const secret = 'server-secret-77c1';
    process.env.ROUTEPLANE_TEST_SECRET = secret;
    process.env.DATABASE_URL = `postgres://u:${secret}@127.0.0.1/db`;
    try {
      const runner = new AnsibleRunner(
        runnerConfig({ ansiblePlaybook: fake, inventoryPath: inventory, vaultPassword: secret }),
        silent,
      );
      expect((await runner.start(spec()).done).status).toBe('succeeded');
    } finally {
      delete process.env.ROUTEPLANE_TEST_SECRET;
      delete process.env.DATABASE_URL;
    }
    const env = (await readFile(out, 'utf8')).split('\0').filter(Boolean);
    expect(env.join('\n')).not.toContain(secret);
    const names = env.map((kv) => kv.slice(0, kv.indexOf('=')));
    const allowed =
      /^(PATH|HOME|USER|LOGNAME|LANG|LC_ALL|TZ|SSH_AUTH_SOCK|PYTHONUNBUFFERED|ANSIBLE_\w+)$/;
    expect(names.filter((n) => !allowed.test(n))).toEqual([]);
    expect(env).toContain('ANSIBLE_STDOUT_CALLBACK=ansible.posix.jsonl');
  });

  it('when ansible-playbook ignores SIGINT, then cancel SIGKILLs its whole process group after the grace period', async () => {
    const pids = path.join(dir, 'stubborn.pids');
    // SIGINT stays ignored in the children too: only SIGKILL can end them. The pids are
    // renamed into place: a file that merely exists may not hold them yet.
    const fake = await script(
      'stubborn.sh',
      `trap '' INT\nsleep 300 &\necho $$ $! > ${pids}.tmp\nmv ${pids}.tmp ${pids}\nwait`,
    );
    const runner = new AnsibleRunner(
      runnerConfig({ ansiblePlaybook: fake, inventoryPath: inventory, runCancelGraceMs: 1_000 }),
      silent,
    );
    const handle = runner.start(spec());
    while (!existsSync(pids)) await sleep(20);
    const [pgid, child] = (await readFile(pids, 'utf8')).trim().split(' ').map(Number) as [
      number,
      number,
    ];
    strays.push(pgid, child);
    const canceledAt = Date.now();
    handle.cancel();
    await sleep(500);
    expect(await isRunning(child), 'SIGINT alone must not end it').toBe(true);
    const outcome = await handle.done;
    expect(Date.now() - canceledAt).toBeGreaterThanOrEqual(1_000);
    expect(outcome).toMatchObject({ status: 'canceled', error: 'canceled on request' });
    expect(await processesInGroup(pgid)).toEqual([]);
  });

  it('when a process leaves the group but names the temp dir (like an SSH master), then it is killed when the run ends', async () => {
    const pidFile = path.join(dir, 'master.pid');
    // A ControlPersist master detaches (setsid) and is titled after its ControlPath socket.
    const fake = await script(
      'detach.sh',
      [
        `setsid bash -c 'exec -a "ssh: $1 [mux]" sleep 300' _ "$PWD/cp/h1-root" </dev/null >/dev/null 2>&1 &`,
        `echo $! > ${pidFile}`,
        'sleep 0.3',
        CALLBACK_DOC,
      ].join('\n'),
    );
    const runner = new AnsibleRunner(
      runnerConfig({ ansiblePlaybook: fake, inventoryPath: inventory }),
      silent,
    );
    const outcome = await runner.start(spec()).done;
    expect(outcome.status).toBe('succeeded');
    const master = Number(await readFile(pidFile, 'utf8'));
    strays.push(master);
    for (let i = 0; i < 50 && (await isRunning(master)); i++) await sleep(20);
    expect(await isRunning(master), `detached pid ${master} should be gone`).toBe(false);
  });

  it('when stderr is larger than the log limit, then the log keeps its tail', async () => {
    const fake = await script(
      'noisy.sh',
      `for i in $(seq 1 2000); do echo "line $i of noise" >&2; done\necho 'the last word' >&2\n${CALLBACK_DOC}`,
    );
    const runner = new AnsibleRunner(
      runnerConfig({ ansiblePlaybook: fake, inventoryPath: inventory, runLogMaxBytes: 1024 }),
      silent,
    );
    const outcome = await runner.start(spec()).done;
    expect(outcome.log.startsWith('[... truncated ...]\n')).toBe(true);
    expect(outcome.log).toMatch(/the last word$/);
    expect(Buffer.byteLength(outcome.log)).toBeLessThanOrEqual(1024 + 40);
    expect(outcome.log).not.toContain('line 1 of noise');
  });

  it('when stdout carries 20 MiB of lines that are not events around the events, then the log keeps a bounded tail and every result is there', async () => {
    const event = (host: string) =>
      `{"_event": "v2_runner_on_ok", "task": {"name": "t"}, "hosts": {"${host}": {"changed": false, "ping": "pong"}}}`;
    const fake = await script(
      'chatter.sh',
      [
        `echo '${event('h1')}'`,
        `head -c 20000000 /dev/zero | tr '\\0' a | fold -w 1000`,
        'echo',
        `echo '${event('h2')}'`,
        'echo "the last plain line"',
        `echo '{"_event": "v2_playbook_on_stats", "stats": {"h1": {"ok": 1}, "h2": {"ok": 1}}}'`,
      ].join('\n'),
    );
    const runner = new AnsibleRunner(
      runnerConfig({ ansiblePlaybook: fake, inventoryPath: inventory, runLogMaxBytes: 2048 }),
      silent,
    );
    const outcome = await runner.start(spec()).done;
    expect(outcome).toMatchObject({ status: 'succeeded', rc: 0 });
    expect(outcome.results.map((r) => `${r.host}/${r.task}/${r.status}`)).toEqual([
      'h1/t/ok',
      'h2/t/ok',
    ]);
    expect(Object.keys(outcome.summary)).toEqual(['h1', 'h2']);
    expect(Buffer.byteLength(outcome.log)).toBeLessThanOrEqual(2048 + 40);
    expect(outcome.log).toMatch(/^\[\.\.\. truncated \.\.\.\]\n/);
    expect(outcome.log).toMatch(/a{1000}\nthe last plain line$/);
  });

  it('when one stdout line is longer than any event may be (40 MiB), then it is cut, named in the log, and the run still ends with its recap', async () => {
    const fake = await script(
      'longline.sh',
      [
        `head -c 41943040 /dev/zero | tr '\\0' y`,
        'echo',
        `echo '{"_event": "v2_playbook_on_stats", "stats": {"h1": {"ok": 1}}}'`,
      ].join('\n'),
    );
    const runner = new AnsibleRunner(
      runnerConfig({ ansiblePlaybook: fake, inventoryPath: inventory, runLogMaxBytes: 1024 }),
      silent,
    );
    const outcome = await runner.start(spec()).done;
    expect(outcome).toMatchObject({ status: 'succeeded', rc: 0, results: [] });
    expect(outcome.summary.h1).toMatchObject({ status: 'ok', ok: 1 });
    expect(outcome.log).toBe('[routeplane: an output line of 41943040 bytes was cut]');
  });

  it('when ansible is killed after some results but before its recap, then the run is an error that keeps those results and says why', async () => {
    const fake = await script(
      'dies.sh',
      [
        `echo '{"_event": "v2_runner_on_ok", "task": {"name": "t"}, "hosts": {"h1": {"changed": true}}}'`,
        'echo "Traceback: something broke" >&2',
        'kill -9 $$',
      ].join('\n'),
    );
    const runner = new AnsibleRunner(
      runnerConfig({ ansiblePlaybook: fake, inventoryPath: inventory }),
      silent,
    );
    const outcome = await runner.start(spec()).done;
    expect(outcome).toMatchObject({ status: 'error', rc: null, summary: {} });
    expect(outcome.results).toEqual([
      {
        host: 'h1',
        task: 't',
        module: null,
        status: 'changed',
        changed: true,
        msg: null,
        data: { changed: true },
      },
    ]);
    expect(outcome.error).toBe('Traceback: something broke');
    expect(outcome.log).toBe('Traceback: something broke');
  });

  it('when the run is canceled before the process starts, then it ends canceled without spawning', async () => {
    const marker = path.join(dir, 'spawned');
    const fake = await script('never.sh', `touch ${marker}\n${CALLBACK_DOC}`);
    const runner = new AnsibleRunner(
      runnerConfig({ ansiblePlaybook: fake, inventoryPath: inventory }),
      silent,
    );
    const handle = runner.start(spec());
    handle.cancel();
    expect(await handle.done).toMatchObject({ status: 'canceled', rc: null });
    expect(existsSync(marker)).toBe(false);
  });
});
