import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase } from '../../../src/db/database.ts';
import {
  claimInstanceDir,
  instanceDirName,
  workspacesRoot,
} from '../../../src/runs/instance-workspaces.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';
import { CountingRunner, eventually, isRunning } from '../../helpers/runs.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

const DEAD = 'gone-host:999999:deadbeef';

/** A process group of its own whose command line reads `title` (as ansible-playbook's names its workspace). */
function processTitled(title: string): number {
  const child = spawn('bash', ['-c', 'exec -a "$0" sleep 300', title], {
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
  return child.pid!;
}

async function commandLine(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replaceAll('\0', ' ');
}

function runRow(owner: string, pgid: number) {
  return {
    id: randomUUID(),
    kind: 'playbook',
    playbook: 'ping',
    hosts: JSON.stringify(['h1']),
    limit_spec: JSON.stringify(['h1']),
    status: 'running',
    requested_by: 'admin',
    owner,
    pgid,
    started_at: new Date(),
  };
}

describe.skipIf(inject('templateDatabase') === null)(
  'workspaces per data directory and instance, swept at start-up',
  () => {
    const pids: number[] = [];
    let database: TestDatabase;
    let live: TestServer;
    let server: TestServer;
    let dataDir: string;
    let deadDir: string;
    let deadRun: string;
    let deadGroup: number;
    let master: number;
    let keptMaster: number;
    let decoy: number;
    let liveRun: string;
    let liveGroup: number;
    let liveInSameRoot: string;

    beforeAll(async () => {
      database = await createTestDatabase(inject('templateDatabase'));
      // A live parallel server, sharing the database as another replica would.
      live = await startTestServer({}, { runner: new CountingRunner(), database });
      liveRun = path.join(live.services.presence.workspaceDir!, 'run-live01');
      await mkdir(liveRun, { recursive: true });
      await writeFile(path.join(liveRun, 'vault-password'), 'live-secret\n');
      liveGroup = processTitled(`ansible-playbook -i ${liveRun}/inventory/hosts.yml`);
      pids.push(liveGroup);

      // What a dead instance left in the data directory the next server starts on.
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'routeplane-test-sweep-'));
      deadDir = await claimInstanceDir(dataDir, DEAD);
      deadRun = path.join(deadDir, 'run-dead01');
      await mkdir(path.join(deadRun, 'cp'), { recursive: true });
      await writeFile(path.join(deadRun, 'vault-password'), 'dead-secret\n');
      deadGroup = processTitled(`ansible-playbook -i ${deadRun}/inventory/hosts.yml`);
      master = processTitled(`ssh: ${deadRun}/cp/0123abcd [mux]`);
      // A master kept across runs (SSH_MASTER_IDLE_S) in the instance's masters dir.
      await mkdir(path.join(deadDir, 'm'), { recursive: true });
      keptMaster = processTitled(`ssh: ${deadDir}/m/0123456789ab-0123456789abcdef [mux]`);
      // A pid recorded for the dead instance that now belongs to something else.
      decoy = processTitled('sleep-not-a-run 300');
      pids.push(deadGroup, master, keptMaster, decoy);
      // The live server's presence, as if it had a directory under this data directory too.
      liveInSameRoot = await claimInstanceDir(dataDir, live.services.presence.id);
      await writeFile(path.join(liveInSameRoot, 'keep'), 'x');

      await database.db
        .knex('runs')
        .insert([
          runRow(DEAD, deadGroup),
          runRow(DEAD, decoy),
          runRow(live.services.presence.id, liveGroup),
        ]);
      const second = openDatabase({ databaseUrl: database.url, dataDir: 'memory://' });
      server = await startTestServer(
        { DATA_DIR: dataDir },
        {
          runner: new CountingRunner(),
          database: { db: second, url: database.url, drop: () => second.close() },
        },
      );
    });

    afterAll(async () => {
      await server?.close();
      await live?.close();
      for (const pid of pids) if (await isRunning(pid)) process.kill(pid, 'SIGKILL');
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
      if (deadDir) await rm(deadDir, { recursive: true, force: true });
      if (liveInSameRoot) await rm(path.dirname(liveInSameRoot), { recursive: true, force: true });
      await database?.drop();
    });

    it('then the workspace path is short: tmp, a digest of the data directory, the instance, rXXXXXX', () => {
      const dir = server.services.presence.workspaceDir!;
      expect(dir).toBe(
        path.join(workspacesRoot(dataDir), instanceDirName(server.services.presence.id)),
      );
      expect(path.basename(path.dirname(dir))).toMatch(/^rp-[0-9a-f]{8}$/);
      // room for rXXXXXX/cp/<40 hex>.<16 random> (ssh's temporary name while it binds) within
      // a unix socket path's 108 bytes
      const socket = path.join(dir, 'rXXXXXX', 'cp', `${'f'.repeat(40)}.${'x'.repeat(16)}`);
      expect(Buffer.byteLength(socket)).toBeLessThan(108);
    });

    it("then the dead instance's workspaces, vault password copy included, are gone", () => {
      expect(existsSync(path.join(deadRun, 'vault-password'))).toBe(false);
      expect(existsSync(deadDir)).toBe(false);
    });

    it('then the process group its run row recorded, and the SSH master naming its run, are stopped', async () => {
      await eventually('the dead run group to stop', async () =>
        (await isRunning(deadGroup)) ? undefined : true,
      );
      await eventually('the master to stop', async () =>
        (await isRunning(master)) ? undefined : true,
      );
      const stopped = server.logs
        .map((l) => JSON.parse(l) as { event?: string; pgid?: number })
        .filter((e) => e.event === 'run.group_stopped');
      expect(stopped.map((e) => e.pgid)).toEqual([deadGroup]);
    });

    it('then the SSH masters it kept across runs, in its masters dir, are stopped', async () => {
      await eventually('the kept master to stop', async () =>
        (await isRunning(keptMaster)) ? undefined : true,
      );
    });

    it('then a recorded pid whose command line names no workspace of the dead instance is left alone', async () => {
      expect(await isRunning(decoy)).toBe(true);
      expect(await commandLine(decoy)).toContain('sleep-not-a-run');
    });

    it("then the live parallel server's workspace and process are kept, in its own root and under this data directory", async () => {
      expect(await readFile(path.join(liveRun, 'vault-password'), 'utf8')).toBe('live-secret\n');
      expect(await isRunning(liveGroup)).toBe(true);
      expect(existsSync(path.join(liveInSameRoot, 'keep'))).toBe(true);
      expect(path.dirname(live.services.presence.workspaceDir!)).not.toBe(
        path.dirname(server.services.presence.workspaceDir!),
      );
    });

    it('when a server stops, then its own workspace directory goes with it', async () => {
      const dir = server.services.presence.workspaceDir!;
      expect(existsSync(dir)).toBe(true);
      await server.close();
      expect(existsSync(dir)).toBe(false);
      server = undefined as unknown as TestServer;
    });
  },
);
