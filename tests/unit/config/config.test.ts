import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config.ts';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('when the environment is empty, then every setting takes its documented default', () => {
    expect(loadConfig({})).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      databaseUrl: undefined,
      dataDir: path.resolve('data'),
      inventoryPath: path.resolve('inventory/hosts.yml'),
      playbooksDir: path.resolve('playbooks'),
      catalogDir: path.resolve('playbooks/catalog'),
      apiTokens: undefined,
      apiTokensFile: undefined,
      vaultPasswordFile: undefined,
      vaultPassword: undefined,
      logLevel: 'info',
      runTimeoutMs: 900_000,
      runCancelGraceMs: 5_000,
      maxConcurrentRuns: 4,
      runLogMaxBytes: 262_144,
      shutdownGraceMs: 30_000,
      allowLocalWrites: false,
      ansiblePlaybook: 'ansible-playbook',
      bodyLimit: '1mb',
      validateResponses: false,
    });
  });

  it("when HOST_PYTHON is unset, then hosts' Python is /usr/bin/python3; auto or a path may be chosen, anything else is refused", () => {
    expect(loadConfig({}).hostPython).toBe('/usr/bin/python3');
    expect(loadConfig({ HOST_PYTHON: 'auto' }).hostPython).toBe('auto');
    expect(loadConfig({ HOST_PYTHON: '/opt/py/bin/python3.11' }).hostPython).toBe(
      '/opt/py/bin/python3.11',
    );
    expect(() => loadConfig({ HOST_PYTHON: 'python3; id' })).toThrow(/HOST_PYTHON/);
  });

  it('when FIREWALL_CONFIRM_S is set, then 0 turns confirms off, 5 and more are windows, and 1 to 4 are refused', () => {
    expect(loadConfig({}).firewallConfirmS).toBe(120);
    expect(loadConfig({ FIREWALL_CONFIRM_S: '0' }).firewallConfirmS).toBe(0);
    expect(loadConfig({ FIREWALL_CONFIRM_S: '5' }).firewallConfirmS).toBe(5);
    expect(() => loadConfig({ FIREWALL_CONFIRM_S: '3' })).toThrow(
      /FIREWALL_CONFIRM_S.*0 \(off\) or at least 5/,
    );
  });

  it('when a variable is set to the empty string, then it counts as unset', () => {
    expect(loadConfig({ PORT: '', LOG_LEVEL: '' })).toMatchObject({ port: 8080, logLevel: 'info' });
  });

  it('when values are given, then they are coerced and converted to their units', () => {
    const config = loadConfig({
      PORT: '9000',
      RUN_TIMEOUT_S: '60',
      ALLOW_LOCAL_WRITES: 'yes',
      DATABASE_URL: 'postgresql://u@db:5432/rp',
    });
    expect(config).toMatchObject({
      port: 9000,
      runTimeoutMs: 60_000,
      allowLocalWrites: true,
      databaseUrl: 'postgresql://u@db:5432/rp',
    });
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['RUN_TIMEOUT_S', '-1'],
    ['RUN_TIMEOUT_S', '1.5'],
    ['LOG_LEVEL', 'loud'],
    ['ALLOW_LOCAL_WRITES', 'maybe'],
    ['BODY_LIMIT', 'lots'],
    ['DATABASE_URL', 'mysql://db/rp'],
    ['MAX_CONCURRENT_RUNS', '0'],
  ])('when %s=%s, then loading throws an error naming %s', (name, value) => {
    const err = configError({ [name]: value });
    expect(err.message).toMatch(new RegExp(`\\b${name}\\b`));
  });

  it('when both VAULT_PASSWORD and VAULT_PASSWORD_FILE are set, then loading throws naming both', () => {
    const err = configError({ VAULT_PASSWORD: 'hunter2-secret', VAULT_PASSWORD_FILE: '/x' });
    expect(err.message).toMatch(/\bVAULT_PASSWORD_FILE\b/);
    expect(err.message).toMatch(/\bVAULT_PASSWORD\b(?!_)/);
    expect(err.message).not.toContain('hunter2-secret');
  });

  it.each([
    ['a role that does not exist', 'alice:root:long-enough-token'],
    ['a token under 8 characters', 'alice:admin:short'],
    ['no separators', 'just-a-token-without-fields'],
    ['a good entry followed by a bad one', 'alice:admin:long-enough-token,bob:viewer'],
  ])('when API_TOKENS has %s, then loading throws naming API_TOKENS', (_case, value) => {
    const err = configError({ API_TOKENS: value });
    expect(err.message).toMatch(/\bAPI_TOKENS\b/);
    expect(err.message).not.toContain('long-enough-token');
  });

  it('when several values are bad, then the error names each of them', () => {
    const err = configError({ PORT: 'abc', LOG_LEVEL: 'loud' });
    expect(err.message).toMatch(/\bPORT\b/);
    expect(err.message).toMatch(/\bLOG_LEVEL\b/);
  });
});

describe('loadConfig, for the files its settings name', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'routeplane-config-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it.each([
    [
      'INVENTORY',
      '/nonexistent/hosts.yml',
      /INVENTORY: cannot read \/nonexistent\/hosts.yml \(ENOENT\)/,
    ],
    ['CATALOG_DIR', '/nonexistent/catalog', /CATALOG_DIR: cannot read .*ENOENT/],
    ['PLAYBOOKS_DIR', '/nonexistent/playbooks', /PLAYBOOKS_DIR: cannot read .*ENOENT/],
    ['API_TOKENS_FILE', '/nonexistent/tokens', /API_TOKENS_FILE: cannot read .*ENOENT/],
    ['VAULT_PASSWORD_FILE', '/nonexistent/vault', /VAULT_PASSWORD_FILE: cannot read .*ENOENT/],
  ])(
    'when %s names a path that does not exist, then loading throws naming it',
    (name, value, why) => {
      expect(configError({ [name]: value }).message).toMatch(why);
    },
  );

  it('when INVENTORY is a directory, then it is accepted as Ansible accepts it', () => {
    mkdirSync(path.join(dir, 'inv.d'));
    file('inv.d/hosts.yml', 'all:\n  hosts:\n    a: {}\n');
    expect(loadConfig({ INVENTORY: path.join(dir, 'inv.d') }).inventoryPath).toBe(
      path.join(dir, 'inv.d'),
    );
  });

  it.each(['host_vars', 'group_vars', 'net/host_vars'])(
    'when CATALOG_DIR holds %s, then loading refuses it: it would change hosts behind the inventory',
    (sub) => {
      mkdirSync(path.join(dir, 'catalog', sub), { recursive: true });
      file(`catalog/${sub}/h1.yml`, 'ansible_connection: local\n');
      expect(configError({ CATALOG_DIR: path.join(dir, 'catalog') }).message).toMatch(
        /CATALOG_DIR: .*(host|group)_vars would set host variables for runs/,
      );
    },
  );

  it('when CATALOG_DIR is PLAYBOOKS_DIR itself, then loading refuses it: the apply playbook would be runnable by name', () => {
    expect(configError({ CATALOG_DIR: 'playbooks' }).message).toMatch(
      /CATALOG_DIR: .* holds routeplane's own playbooks/,
    );
  });

  it('when CATALOG_DIR is above PLAYBOOKS_DIR, then loading refuses it too', () => {
    expect(configError({ CATALOG_DIR: '.' }).message).toMatch(/CATALOG_DIR: /);
  });

  it('when PLAYBOOKS_DIR lacks routeplane own playbooks, then loading throws naming the missing one', () => {
    mkdirSync(path.join(dir, 'catalog'));
    const err = configError({ PLAYBOOKS_DIR: dir, CATALOG_DIR: path.join(dir, 'catalog') });
    expect(err.message).toMatch(/PLAYBOOKS_DIR: cannot read .*apply\.yml/);
  });

  it('when API_TOKENS_FILE has a malformed line, then loading throws naming API_TOKENS_FILE and the line', () => {
    const tokens = file('tokens', 'alice:admin:not-hex\n');
    expect(configError({ API_TOKENS_FILE: tokens }).message).toMatch(
      /API_TOKENS_FILE .*tokens: line 1 /,
    );
  });

  it('when VAULT_PASSWORD_FILE is empty, then loading throws naming it', () => {
    const vault = file('vault', '\n');
    expect(configError({ VAULT_PASSWORD_FILE: vault }).message).toMatch(
      /VAULT_PASSWORD_FILE: .* is empty/,
    );
  });

  it('when every named file is in order, then their absolute paths are the config', () => {
    const tokens = file('tokens', `alice:admin:${'ab'.repeat(32)}\n`);
    const vault = file('vault', 'hunter2\n');
    expect(loadConfig({ API_TOKENS_FILE: tokens, VAULT_PASSWORD_FILE: vault })).toMatchObject({
      apiTokensFile: tokens,
      vaultPasswordFile: vault,
    });
  });
});
