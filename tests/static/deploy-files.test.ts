import {
  cpSync,
  existsSync,
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
  'README.md',
];
const LINKED = ['src', 'playbooks', 'runner', 'inventory', 'docs'];

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
    [
      'Kong’s admin API on every interface',
      'KONG_ADMIN_LISTEN: 127.0.0.1:8001',
      'KONG_ADMIN_LISTEN: 0.0.0.0:8001',
      /KONG_ADMIN_LISTEN must be off or on 127\.0\.0\.1 only \(is 0\.0\.0\.0:8001\)/,
    ],
    [
      'Kong’s admin API published on the host',
      '      - ${KONG_PROXY_PORT:-8000}:8000\n',
      '      - ${KONG_PROXY_PORT:-8000}:8000\n      - 127.0.0.1:8001:8001\n',
      /kong: publishes the admin API port 8001/,
    ],
    [
      'the lab hosts outside the lab profile',
      '  profiles: [lab]\n  image: routeplane-lab-host',
      '  image: routeplane-lab-host',
      /service lab-1: a lab service must be in profile lab alone/,
    ],
    [
      'a core service in the lab profile',
      '  kong:\n    image: kong',
      '  kong:\n    profiles: [lab]\n    image: kong',
      /service kong: only lab services have a profile/,
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
  it('when checked, then bases are pinned, it runs as its fixed non-root user, every COPY source exists and dev dependencies are pruned', () => {
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
    [
      'Dockerfile',
      'no warm runner script',
      'COPY runner ./runner',
      '',
      /must COPY runner \.\/runner/,
    ],
    ['Dockerfile', 'no tini', '"/usr/bin/tini", "--"', '"/usr/bin/env"', /under tini/],
    [
      'Dockerfile',
      'the data directory made with mode 0755',
      '-m 0700 /data',
      '-m 0755 /data',
      /DATA_DIR \/data must be created with mode 0700/,
    ],
    [
      'Dockerfile',
      'a Node 22 runtime base',
      /NODE_IMAGE=node:20\.[\d.]+-bookworm-slim/,
      'NODE_IMAGE=node:22.11.0-bookworm-slim',
      /runtime base node:22\.11\.0-bookworm-slim@sha256:\w+ is not Node 20 on Debian bookworm/,
    ],
    [
      'Dockerfile',
      'a Debian bullseye runtime base',
      /NODE_IMAGE=node:20\.[\d.]+-bookworm-slim/,
      'NODE_IMAGE=node:20.19.5-bullseye-slim',
      /is not Node 20 on Debian bookworm/,
    ],
    ['Dockerfile', 'no APP_GID build arg', /^ARG APP_GID=.*\n/m, '', /needs ARG APP_GID/],
    [
      'Dockerfile',
      'a user whose UID ignores APP_UID',
      '--uid "${APP_UID}"',
      '--uid 10001',
      /USER routeplane must be \$\{APP_UID\}:\$\{APP_GID\} or made by useradd/,
    ],
    [
      'Dockerfile',
      'dev dependencies left in the build stage',
      ' && npm prune --omit=dev --no-audit --no-fund',
      '',
      /stage build must prune dev dependencies/,
    ],
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

const REFERRING = [
  '.env.example',
  'kong/consumers.yml',
  'kong/kong.yml',
  'docker-compose.yml',
  'Dockerfile',
];

/** Where a deployment file sends its reader: `docs/*.md` files and README sections. */
function missingReferences(root: string): string[] {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const headings = new Set([...readme.matchAll(/^#+ (.+)$/gm)].map((m) => m[1]!.trim()));
  const missing: string[] = [];
  for (const file of REFERRING) {
    const text = readFileSync(path.join(root, file), 'utf8');
    for (const [doc] of text.matchAll(/\bdocs\/[\w./-]+\.md\b/g)) {
      if (!existsSync(path.join(root, doc))) missing.push(`${file}: ${doc} does not exist`);
    }
    for (const [, section] of text.matchAll(/README\.md, section "([^"]+)"/g)) {
      if (!headings.has(section!)) missing.push(`${file}: README.md has no section "${section}"`);
    }
  }
  return missing;
}
describe('the deployment files’ pointers to documentation', () => {
  it('when they name a document or a README section, then it exists', () => {
    expect(missingReferences(REPO)).toEqual([]);
  });

  it('when a copy points at a missing document, then the check catches it', () => {
    const dir = brokenCopy(
      'kong/consumers.yml',
      /README\.md, section "[^"]+"/,
      'docs/production.md',
    );
    expect(missingReferences(dir)).toEqual([
      'kong/consumers.yml: docs/production.md does not exist',
    ]);
  });

  it('when a copy names a README section that is not there, then the check catches it', () => {
    const dir = brokenCopy(
      '.env.example',
      'section "Production: Kong and Docker"',
      'section "Production"',
    );
    expect(missingReferences(dir)).toEqual(['.env.example: README.md has no section "Production"']);
  });
});
