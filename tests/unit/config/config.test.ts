import path from 'node:path';
import { describe, expect, it } from 'vitest';
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
