import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REPO } from '../../helpers/server.ts';

describe('starting the server process with a bad configuration', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'routeplane-startup-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  const start = (env: Record<string, string>) =>
    execa('node', ['--import', 'tsx', 'src/server.ts'], {
      cwd: REPO,
      env: { DATA_DIR: dataDir, DATABASE_URL: '', API_TOKENS: '', ...env },
      reject: false,
      timeout: 30_000,
    });

  it('when PORT=abc, then the process exits 2 with a message naming PORT on stderr', async () => {
    const result = await start({ PORT: 'abc' });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/^routeplane: invalid configuration: .*\bPORT\b/m);
    expect(result.stdout).toBe('');
  });

  it('when API_TOKENS is malformed, then the process exits 2 naming API_TOKENS and creates nothing', async () => {
    const result = await start({ API_TOKENS: 'alice:superuser:long-enough-token' });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/\bAPI_TOKENS\b/);
    expect(result.stderr).not.toContain('long-enough-token');
    expect(await readdir(dataDir)).toEqual([]);
  });
  it('when INVENTORY names no file, then the process exits 2 naming INVENTORY before it opens anything', async () => {
    const result = await start({ INVENTORY: '/nonexistent/routeplane/hosts.yml' });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/^routeplane: invalid configuration: INVENTORY: cannot read/m);
    expect(await readdir(dataDir)).toEqual([]);
  });

  it('when INVENTORY is a file Ansible cannot parse, then the process exits 2 naming INVENTORY before it opens anything', async () => {
    const bad = path.join(dataDir, '..', `${path.basename(dataDir)}-hosts.yml`);
    await writeFile(bad, 'all:\n  hosts: [a, b\n');
    try {
      const result = await start({ INVENTORY: bad });
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toMatch(
        /^routeplane: invalid configuration: INVENTORY: .* is not a valid inventory/m,
      );
      expect(await readdir(dataDir)).toEqual([]);
    } finally {
      await rm(bad, { force: true });
    }
  });
});
