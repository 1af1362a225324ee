import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONFIG_ENV_VARS, ConfigError, loadConfig } from '../../src/config.ts';

const SECRET = 'b'.repeat(40);
const dir = mkdtempSync(path.join(os.tmpdir(), 'routeplane-kong-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('AUTH_MODE and the gateway secret in the configuration', () => {
  it('when AUTH_MODE is unset, then bearer tokens apply and there is no gateway secret', () => {
    const config = loadConfig({});
    expect(config.authMode).toBe('token');
    expect(config.gatewaySecret).toBeUndefined();
  });

  it('when AUTH_MODE=kong has GATEWAY_SECRET, then it is used', () => {
    const config = loadConfig({ AUTH_MODE: 'kong', GATEWAY_SECRET: SECRET });
    expect(config).toMatchObject({ authMode: 'kong', gatewaySecret: SECRET });
  });

  it('when AUTH_MODE=kong has GATEWAY_SECRET_FILE, then the file is read without its newline', () => {
    const file = path.join(dir, 'gateway_secret');
    writeFileSync(file, SECRET + '\n', { mode: 0o600 });
    expect(loadConfig({ AUTH_MODE: 'kong', GATEWAY_SECRET_FILE: file }).gatewaySecret).toBe(SECRET);
  });

  it.each([
    ['kong mode without a secret', { AUTH_MODE: 'kong' }, /AUTH_MODE=kong needs GATEWAY_SECRET/],
    [
      'a short secret',
      { AUTH_MODE: 'kong', GATEWAY_SECRET: 'short' },
      /GATEWAY_SECRET: .*32 or more/,
    ],
    [
      'both a secret and a file',
      { AUTH_MODE: 'kong', GATEWAY_SECRET: SECRET, GATEWAY_SECRET_FILE: '/x' },
      /not both/,
    ],
    [
      'an unreadable secret file',
      { AUTH_MODE: 'kong', GATEWAY_SECRET_FILE: '/nonexistent/secret' },
      /GATEWAY_SECRET_FILE: cannot read \/nonexistent\/secret \(ENOENT\)/,
    ],
    ['a secret without kong mode', { GATEWAY_SECRET: SECRET }, /only used with AUTH_MODE=kong/],
    ['an unknown mode', { AUTH_MODE: 'ldap' }, /AUTH_MODE/],
  ])('when given %s, then start-up stops naming the variable', (_, env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('when a config error mentions the secret, then it never shows its value', () => {
    const leaked = 'x'.repeat(10) + ' with space ' + 'y'.repeat(30);
    expect(() => loadConfig({ AUTH_MODE: 'kong', GATEWAY_SECRET: leaked })).toThrow(
      /^(?!.*with space).*$/s,
    );
  });

  it('when deployment files are checked, then the auth variables are known settings', () => {
    expect(CONFIG_ENV_VARS).toEqual(
      expect.arrayContaining(['AUTH_MODE', 'GATEWAY_SECRET', 'GATEWAY_SECRET_FILE']),
    );
  });
});
