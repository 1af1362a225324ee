import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { load } from 'js-yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { kongPlaceholders } from './compose-checks.ts';
import { REPO } from './contract.ts';

const secret = () => randomBytes(32).toString('hex');
const dir = mkdtempSync(path.join(os.tmpdir(), 'routeplane-kong-render-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The environment compose gives the render step: every required placeholder, no optional one. */
function deployEnv(): Record<string, string> {
  const env: Record<string, string> = {
    ROUTEPLANE_UPSTREAM_URL: 'http://api:8080',
    UI_ORIGIN: 'https://ui.example.org',
  };
  for (const name of kongPlaceholders(REPO)) {
    if (!(name in env) && !name.endsWith('_NEXT')) env[name] = secret();
  }
  return env;
}

function render(
  env: Record<string, string>,
  out = path.join(dir, 'kong.yml'),
  template = 'kong/kong.yml',
) {
  const res = spawnSync('node', ['scripts/kong-render.mjs', template, out], {
    cwd: REPO,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, ...env },
  });
  return { ...res, out };
}

type Rendered = {
  services: { url: string; routes: { plugins?: { name: string; config: unknown }[] }[] }[];
  consumers: { username: string; keyauth_credentials: { key: string }[] }[];
};

describe('scripts/kong-render.mjs on the committed kong/kong.yml', () => {
  it('when every variable is set, then the config is complete with no placeholder left', () => {
    const env = deployEnv();
    const res = render(env);
    expect(res.status, res.stderr).toBe(0);
    const text = readFileSync(res.out, 'utf8');
    expect(text).not.toContain('${');
    expect(text).toContain(`Authorization:Bearer ${env.GATEWAY_SECRET}`);
    const config = load(text) as Rendered;
    expect(config.services[0]!.url).toBe('http://api:8080');
    for (const c of config.consumers) {
      const variable = `KONG_KEY_${c.username.toUpperCase().replace(/-/g, '_')}`;
      // The empty *_NEXT slot is dropped, not sent to Kong as an empty key.
      expect(c.keyauth_credentials).toEqual([{ key: env[variable] }]);
    }
    expect(statSync(res.out).mode & 0o777).toBe(0o644);
  });

  it('when a *_NEXT key is set for rotation, then the consumer has both keys', () => {
    const env = deployEnv();
    const next = secret();
    const res = render({ ...env, KONG_KEY_OPS_ADMIN_NEXT: next });
    expect(res.status, res.stderr).toBe(0);
    const admin = (load(readFileSync(res.out, 'utf8')) as Rendered).consumers.find(
      (c) => c.username === 'ops-admin',
    );
    expect(admin?.keyauth_credentials).toEqual([{ key: env.KONG_KEY_OPS_ADMIN }, { key: next }]);
  });

  it('when variables are missing or weak, then it fails naming each, never echoing a value', () => {
    const env = deployEnv();
    const weak = 'short-key';
    delete env.GATEWAY_SECRET;
    const res = render(
      { ...env, KONG_KEY_DASHBOARD: weak, KONG_KEY_OPS_ADMIN: 'change-me-' + secret() },
      path.join(dir, 'never.yml'),
    );
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/GATEWAY_SECRET: is not set/);
    expect(res.stderr).toMatch(/KONG_KEY_DASHBOARD: must be 32\+ characters/);
    expect(res.stderr).toMatch(/KONG_KEY_OPS_ADMIN: still has the example value/);
    expect(res.stderr).not.toContain(weak);
    expect(() => statSync(path.join(dir, 'never.yml'))).toThrow();
  });

  it('when two consumers are given the same key, then it refuses', () => {
    const env = deployEnv();
    const res = render({ ...env, KONG_KEY_DASHBOARD: env.KONG_KEY_OPS_ADMIN! });
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/share a key/);
  });

  it.each([
    [
      'a lower-case name',
      'url: ${ROUTEPLANE_UPSTREAM_URL}',
      'url: ${upstream_url}',
      '${upstream_url}',
    ],
    [
      'a shell-style default',
      "origins: ['${UI_ORIGIN}']",
      "origins: ['${UI_ORIGIN:-https://ui.example.org}']",
      '${UI_ORIGIN:-https://ui.example.org}',
    ],
  ])(
    'when the template has a placeholder with %s, then it fails naming it and writes no file',
    (_, from, to, survivor) => {
      const committed = readFileSync(path.join(REPO, 'kong/kong.yml'), 'utf8');
      expect(committed).toContain(from);
      const out = mkdtempSync(path.join(dir, 'survivor-'));
      const template = path.join(out, 'template.yml');
      writeFileSync(template, committed.replace(from, to));
      const res = render(deployEnv(), path.join(out, 'kong.yml'), template);
      expect(res.status).toBe(1);
      expect(res.stderr).toContain(`${survivor}: not a placeholder`);
      expect(readdirSync(out)).toEqual(['template.yml']);
    },
  );
});
