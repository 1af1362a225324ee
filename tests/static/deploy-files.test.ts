import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { composeConfig, composeProblems, hasDockerCompose } from './compose-checks.ts';
import { REPO } from './contract.ts';
import { dockerfileProblems } from './dockerfile-checks.ts';

const COPIED = [
  'docker-compose.yml',
  '.env.example',
  'Dockerfile',
  '.dockerignore',
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'openapi.yaml',
  'kong',
  'scripts/kong-render.mjs',
];
const LINKED = ['src', 'playbooks', 'inventory'];

let copies: string[] = [];
afterEach(() => {
  for (const dir of copies) rmSync(dir, { recursive: true, force: true });
  copies = [];
});

/** The deployment files in a temp dir (sources linked), with `edit` applied to one file. */
function brokenCopy(file: string, from: string | RegExp, to: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'routeplane-deploy-'));
  copies.push(dir);
  mkdirSync(path.join(dir, 'scripts'));
  for (const f of COPIED) cpSync(path.join(REPO, f), path.join(dir, f), { recursive: true });
  for (const d of LINKED) symlinkSync(path.join(REPO, d), path.join(dir, d));
  const target = path.join(dir, file);
  const text = readFileSync(target, 'utf8');
  const edited = text.replace(from, to);
  if (edited === text) throw new Error(`the edit of ${file} matched nothing: update this test`);
  writeFileSync(target, edited);
  return dir;
}

describe('docker-compose.yml, given Debian’s docker-compose and .env.example', () => {
  beforeAll(() => {
    expect(
      hasDockerCompose(),
      'docker-compose is not installed: scripts/lib.sh ensure_tools installs it (apt-get install docker-compose)',
    ).toBe(true);
  });

  it('when validated with `docker-compose config -q`, then it passes', () => {
    const res = composeConfig(REPO, true);
    expect(res.status, res.stderr).toBe(0);
  });

  it('when every file, port, variable and service it names is checked, then all exist and agree', () => {
    expect(composeProblems(REPO)).toEqual([]);
  });

  it.each([
    [
      'a bind mount of a missing directory',
      './inventory:',
      './inventry:',
      /inventry, which does not exist/,
    ],
    [
      'a variable the API does not read',
      '      AUTH_MODE: kong\n',
      '      AUTH_MODE: kong\n      AUTH_MOOD: kong\n',
      /sets AUTH_MOOD, which it does not read/,
    ],
    [
      'a Kong placeholder the render step is not given',
      /^ {6}KONG_KEY_OPS_ADMIN_NEXT:.*\n/m,
      '',
      /does not pass KONG_KEY_OPS_ADMIN_NEXT/,
    ],
    [
      'a dependency on an unknown service',
      '      postgres:\n        condition: service_healthy',
      '      postgress:\n        condition: service_healthy',
      /postgress/,
    ],
    [
      'a script the image does not contain',
      'scripts/kong-render.mjs,',
      'scripts/kong-rendr.mjs,',
      /kong-rendr\.mjs, which does not exist/,
    ],
    [
      'Kong reading another file than the one rendered',
      'KONG_DECLARATIVE_CONFIG: /kong/kong.yml',
      'KONG_DECLARATIVE_CONFIG: /kong/other.yml',
      /is not the file kong-render writes/,
    ],
    ['an unpinned image', /image: kong:[^\n]+/, 'image: kong:latest', /kong:latest is not pinned/],
    [
      'the API published on the host',
      "    expose: ['8080']",
      "    expose: ['8080']\n    ports: ['8080:8080']",
      /only kong may/,
    ],
    [
      'a build target the Dockerfile lacks',
      'target: lab-host',
      'target: lab-hots',
      /lab-hots is no Dockerfile stage/,
    ],
  ])('when a copy has %s, then the checks catch it', (_, from, to, expected) => {
    const dir = brokenCopy('docker-compose.yml', from, to);
    expect(composeProblems(dir).join('\n')).toMatch(expected);
  });

  it('when .env.example lacks a required variable, then the checks catch it', () => {
    const dir = brokenCopy('.env.example', /^GATEWAY_SECRET=.*\n/m, '');
    expect(composeProblems(dir).join('\n')).toMatch(/GATEWAY_SECRET/);
  });
});

describe('Dockerfile', () => {
  it('when checked, then bases are pinned, it runs as non-root and every COPY source exists', () => {
    expect(dockerfileProblems(REPO)).toEqual([]);
  });

  it.each([
    [
      'Dockerfile',
      'a COPY of a missing path',
      'COPY playbooks ./playbooks',
      'COPY playbook ./playbooks',
      /COPY source playbook does not exist/,
    ],
    ['Dockerfile', 'an unpinned base', /@sha256:[0-9a-f]{64}/, '', /is not pinned/],
    ['Dockerfile', 'a root user', 'USER routeplane', 'USER root', /non-root USER/],
    [
      'Dockerfile',
      'no healthcheck',
      /^HEALTHCHECK[^\n]*\\\n[^\n]*\n/m,
      '',
      /HEALTHCHECK on \/healthz/,
    ],
    [
      'Dockerfile',
      'a COPY from an unknown stage',
      '--from=build /app/dist',
      '--from=buld /app/dist',
      /--from=buld names no earlier stage/,
    ],
    ['Dockerfile', 'no tini', '"/usr/bin/tini", "--"', '"/usr/bin/env"', /under tini/],
    [
      '.dockerignore',
      'the playbooks left out of the context',
      'tests\n',
      'tests\nplaybooks\n',
      /playbooks is excluded by \.dockerignore/,
    ],
  ])('when %s has %s, then the checks catch it', (file, _, from, to, expected) => {
    const dir = brokenCopy(file, from, to);
    expect(dockerfileProblems(dir).join('\n')).toMatch(expected);
  });
});
