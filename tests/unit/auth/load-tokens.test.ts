import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadTokens } from '../../../src/auth/load-tokens.ts';
import { sha256 } from '../../../src/auth/token-registry.ts';
import { createLogger } from '../../../src/logger.ts';

describe('loadTokens', () => {
  let dataDir: string;
  let logs: string[];
  let logger: ReturnType<typeof createLogger>;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'routeplane-load-tokens-'));
    logs = [];
    logger = createLogger(
      'trace',
      new Writable({
        write(chunk, _enc, cb) {
          logs.push(String(chunk));
          cb();
        },
      }),
    );
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  const adminTokenFile = () => path.join(dataDir, 'admin.token');

  it('when API_TOKENS and API_TOKENS_FILE are both set, then tokens from both are accepted', async () => {
    const file = path.join(dataDir, 'tokens');
    await writeFile(file, `ci:operator:${sha256('ci-token-123').toString('hex')}\n`);
    const registry = loadTokens(
      { apiTokens: 'alice:admin:alice-token-1', apiTokensFile: file, dataDir },
      logger,
    );
    expect(registry.size).toBe(2);
    expect(registry.verify('alice-token-1')).toEqual({ name: 'alice', role: 'admin' });
    expect(registry.verify('ci-token-123')).toEqual({ name: 'ci', role: 'operator' });
    await expect(stat(adminTokenFile())).rejects.toThrow(/ENOENT/);
  });

  it('when no tokens are configured, then an admin token is generated into DATA_DIR/admin.token with mode 0600', async () => {
    const registry = loadTokens(
      { apiTokens: undefined, apiTokensFile: undefined, dataDir },
      logger,
    );
    const st = await stat(adminTokenFile());
    expect(st.mode & 0o777).toBe(0o600);
    const token = (await readFile(adminTokenFile(), 'utf8')).trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(registry.size).toBe(1);
    expect(registry.verify(token)).toEqual({ name: 'admin', role: 'admin' });
  });

  it('when the generated token exists already, then it is reused, not replaced', async () => {
    loadTokens({ apiTokens: undefined, apiTokensFile: undefined, dataDir }, logger);
    const first = await readFile(adminTokenFile(), 'utf8');
    const registry = loadTokens(
      { apiTokens: undefined, apiTokensFile: undefined, dataDir },
      logger,
    );
    expect(await readFile(adminTokenFile(), 'utf8')).toBe(first);
    expect(registry.verify(first.trim())).toEqual({ name: 'admin', role: 'admin' });
  });

  it('when the admin token is generated, then the log names its file but never the token', async () => {
    loadTokens({ apiTokens: undefined, apiTokensFile: undefined, dataDir }, logger);
    const token = (await readFile(adminTokenFile(), 'utf8')).trim();
    const text = logs.join('');
    expect(text).toContain('auth.bootstrap_token');
    expect(text).toContain(adminTokenFile());
    expect(text).not.toContain(token);
  });
});
