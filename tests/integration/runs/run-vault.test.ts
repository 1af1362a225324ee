import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import {
  allCommandLines,
  isRunning,
  liveProcesses,
  runWhen,
  spawnedRun,
  type SpawnedRun,
} from '../../helpers/runs.ts';
import { startTestServer, type TestResponse, type TestServer } from '../../helpers/server.ts';

const T = 60_000;

/** Environments of every live process that has the text in one of its variables. */
async function environmentsHolding(text: string): Promise<string[]> {
  const hits: string[] = [];
  for (const p of await liveProcesses()) {
    const env = await readFile(`/proc/${p.pid}/environ`, 'utf8').catch(() => '');
    if (env.includes(text)) hits.push(`${p.pid}: ${p.cmdline.replaceAll('\0', ' ')}`);
  }
  return hits;
}

describe('vault-encrypted vars, on a lab of 1 host', { timeout: T }, () => {
  const fleet = useLab(1);
  // random per run, so no earlier run or other file can have put it anywhere
  const password = `vault-pw-${randomBytes(8).toString('hex')}`;
  const plaintext = `plain-secret-${randomBytes(8).toString('hex')}`;
  let dir: string;
  let vaultFile: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'run-vault-'));
    const passwordFile = path.join(dir, 'password');
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    // the password goes to ansible-vault in a file, never on its argv
    const { stdout } = await execa('ansible-vault', [
      'encrypt_string',
      '--vault-password-file',
      passwordFile,
      '--name',
      'vaulted_secret',
      plaintext,
    ]);
    expect(stdout).toMatch(/^vaulted_secret: !vault \|\n\s+\$ANSIBLE_VAULT;1\.1;AES256/);
    vaultFile = path.join(dir, 'vault-secret.yml');
    await writeFile(vaultFile, `${stdout}\n`);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('given VAULT_PASSWORD in the server configuration', () => {
    let server: TestServer;
    const responses: TestResponse[] = [];
    const seenOnArgv: string[] = [];
    const seenInEnv: string[] = [];
    let spawned: SpawnedRun;
    let scansWhileRunning = 0;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    let run: any;

    beforeAll(async () => {
      server = await startTestServer({
        INVENTORY: fleet.lab.inventoryPath,
        VAULT_PASSWORD: password,
      });
      const started = await server.request('POST', '/v1/runs', {
        body: { playbook: 'vault', limit: ['h1'], extravars: { vault_file: vaultFile } },
      });
      responses.push(started);
      expect(started.status, started.text).toBe(202);
      spawned = await spawnedRun(server, started.body.id);
      // vault.yml pauses for a few seconds after decrypting: scan every process meanwhile
      while (await isRunning(spawned.pgid)) {
        seenOnArgv.push(...(await allCommandLines()).filter((c) => c.includes(password)));
        seenInEnv.push(...(await environmentsHolding(password)));
        if (await isRunning(spawned.pgid)) scansWhileRunning++;
      }
      await runWhen(
        server,
        started.body.id,
        (r) => r.status !== 'queued' && r.status !== 'running',
      );
      for (const url of [`/v1/runs/${started.body.id}`, '/v1/runs']) {
        responses.push(await server.request('GET', url, { token: 'viewer' }));
      }
      run = responses[1]!.body;
    }, T);

    afterAll(async () => {
      await server?.close();
    }, T);

    it('when the run ends, then it succeeded and the playbook could read the decrypted var', () => {
      expect(run.status, JSON.stringify(run)).toBe('succeeded');
      const used = run.results.find((r: { task: string }) => r.task === 'use it');
      expect(used.data.msg).toBe(`secret has ${plaintext.length} characters`);
    });

    it('while the run was running, then no process had the password on its command line', () => {
      expect(scansWhileRunning).toBeGreaterThan(0);
      expect(seenOnArgv).toEqual([]);
    });

    it('while the run was running, then no process had the password in its environment', () => {
      expect(scansWhileRunning).toBeGreaterThan(0);
      expect(seenInEnv).toEqual([]);
    });

    it('when the server logged the run at debug level, then no log line holds the password or the secret', () => {
      expect(server.logs.length).toBeGreaterThan(0);
      expect(server.logs.filter((l) => l.includes(password))).toEqual([]);
      expect(server.logs.filter((l) => l.includes(plaintext))).toEqual([]);
    });

    it('when the API answers about the run, then no response holds the password or the secret', () => {
      expect(responses.map((r) => r.status)).toEqual([202, 200, 200]);
      for (const res of responses) {
        expect(res.text).not.toContain(password);
        expect(res.text).not.toContain(plaintext);
      }
    });

    it('when the run has ended, then its temp dir, which held the password file, is gone', async () => {
      await expect(readFile(path.join(spawned.workspace, 'vault-password'))).rejects.toThrow(
        /ENOENT/,
      );
    });
  });

  describe('given no vault password configured', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath });
    }, T);
    afterAll(async () => {
      await server?.close();
    }, T);

    it('when a playbook needs a vaulted var, then the host fails saying it cannot decrypt', async () => {
      const res = await server.request('POST', '/v1/runs?wait=50', {
        body: { playbook: 'vault', limit: ['h1'], extravars: { vault_file: vaultFile } },
      });
      expect(res.status, res.text).toBe(201);
      expect(res.body.status).toBe('failed');
      expect(res.body.summary.h1).toMatchObject({ status: 'failed', failures: 1 });
      expect(res.body.summary.h1.msg).toMatch(/vault/i);
      expect(res.text).not.toContain(plaintext);
    });
  });
});
