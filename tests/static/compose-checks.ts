import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { load } from 'js-yaml';
import { CONFIG_ENV_VARS } from '../../src/config.ts';
import { dockerfileFacts, isPinnedImage, stagesOf } from './dockerfile-checks.ts';

/** What docker-compose.yml must get right without an engine to run it: returns each problem. */

type Service = {
  image?: string;
  build?: { context: string; target?: string; args?: Record<string, string> };
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  volumes?: string[];
  /** Long syntax, except where docker-compose 1.29 keeps a host address: `127.0.0.1:80:8000`. */
  ports?: ({ published: number | string; target: number | string } | string)[];
  expose?: string[];
  healthcheck?: unknown;
  restart?: string;
  profiles?: string[];
};
type ComposeConfig = { services: Record<string, Service>; volumes?: Record<string, unknown> };

const PLACEHOLDER = /\$\{([A-Z][A-Z0-9_]*)(:-)?\}/g;

export function hasDockerCompose(): boolean {
  return spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0;
}

/**
 * `docker-compose config` with .env.example as the only source of variables (the test
 * process's own environment must not fill a gap), every profile on. Validates and resolves.
 */
export function composeConfig(root: string, quiet = false) {
  const res = spawnSync(
    'docker-compose',
    [
      '--project-directory',
      root,
      '-f',
      path.join(root, 'docker-compose.yml'),
      '--env-file',
      path.join(root, '.env.example'),
      '--profile',
      'lab',
      'config',
      ...(quiet ? ['-q'] : []),
    ],
    { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root } },
  );
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

/** Names a .env.example sets (`NAME=`) or documents as optional (`# NAME=`). */
function envExampleNames(text: string): { set: Set<string>; documented: Set<string> } {
  const set = new Set<string>();
  const documented = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^(#\s*)?([A-Z][A-Z0-9_]*)=/.exec(line.trim());
    if (m) (m[1] ? documented : set).add(m[2]!);
  }
  return { set, documented };
}

export function kongPlaceholders(root: string): Set<string> {
  const strings = (n: unknown): string[] =>
    typeof n === 'string'
      ? [n]
      : n && typeof n === 'object'
        ? Object.values(n).flatMap(strings)
        : [];
  const doc = load(readFileSync(path.join(root, 'kong/kong.yml'), 'utf8'));
  return new Set(strings(doc).flatMap((s) => [...s.matchAll(PLACEHOLDER)].map((m) => m[1]!)));
}

const listenPort = (listen: string | undefined) => /:(\d+)\b/.exec(listen ?? '')?.[1];

/** `off`, or only loopback addresses (`127.0.0.1:8001 reuseport, [::1]:8444 ssl`). */
function isLoopbackOnly(listen: string): boolean {
  if (listen.trim() === 'off') return true;
  return listen
    .split(',')
    .every((entry) => /^(127\.0\.0\.1|\[::1\]):\d+(\s+\S+)*$/.test(entry.trim()));
}

/** The try-it-yourself hosts and their set-up: named lab-* or built from the lab-host stage. */
const isLabService = (name: string, svc: Service) =>
  /^lab(-|$)/.test(name) || svc.build?.target === 'lab-host';

export function composeProblems(root: string): string[] {
  const res = composeConfig(root);
  if (res.status !== 0) return [`docker-compose config failed: ${res.stderr.trim()}`];
  const problems: string[] = [];
  const config = load(res.stdout) as ComposeConfig;
  const raw = readFileSync(path.join(root, 'docker-compose.yml'), 'utf8');
  const env = envExampleNames(readFileSync(path.join(root, '.env.example'), 'utf8'));
  for (const m of raw.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[?-])?/g)) {
    const [, name, op] = m;
    if (op?.endsWith('?') && !env.set.has(name!))
      problems.push(`.env.example: must set ${name} (required by docker-compose.yml)`);
    else if (!env.set.has(name!) && !env.documented.has(name!))
      problems.push(`.env.example: does not mention ${name}`);
  }
  const facts = dockerfileFacts(root);
  const finalStage = stagesOf(readFileSync(path.join(root, 'Dockerfile'), 'utf8')).stages.at(
    -1,
  )?.name;
  const copied = stagesOf(readFileSync(path.join(root, 'Dockerfile'), 'utf8'))
    .stages.at(-1)!
    .instructions.filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='))
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
  const placeholders = kongPlaceholders(root);
  const envRules: Record<string, (k: string) => boolean> = {
    api: (k) => CONFIG_ENV_VARS.includes(k),
    'kong-render': (k) => placeholders.has(k),
    kong: (k) => k.startsWith('KONG_'),
    postgres: (k) => k.startsWith('POSTGRES_'),
  };
  const services = config.services;
  const mounts = (name: string) =>
    (services[name]?.volumes ?? []).map((v) => {
      const [source, target] = v.split(':');
      return { source: source!, target: target! };
    });
  for (const [name, svc] of Object.entries(services)) {
    const where = `docker-compose.yml: service ${name}`;
    for (const [dep, { condition }] of Object.entries(svc.depends_on ?? {})) {
      const target = services[dep];
      if (!target) problems.push(`${where}: depends on unknown service ${dep}`);
      else if (
        condition === 'service_healthy' &&
        !target.healthcheck &&
        target.build?.target !== finalStage
      ) {
        problems.push(`${where}: waits for ${dep} to be healthy, but ${dep} has no healthcheck`);
      }
    }
    if (svc.build) {
      if (!existsSync(path.join(svc.build.context, 'Dockerfile')))
        problems.push(`${where}: no Dockerfile in ${svc.build.context}`);
      if (svc.build.target && !facts.stages.includes(svc.build.target))
        problems.push(`${where}: build target ${svc.build.target} is no Dockerfile stage`);
      for (const arg of Object.keys(svc.build.args ?? {})) {
        if (!facts.args.includes(arg))
          problems.push(`${where}: build arg ${arg} is no Dockerfile ARG`);
      }
    } else if (!svc.image || !isPinnedImage(svc.image)) {
      problems.push(`${where}: image ${svc.image} is not pinned by version tag and digest`);
    }
    for (const { source } of mounts(name)) {
      if (path.isAbsolute(source)) {
        if (!existsSync(source)) problems.push(`${where}: mounts ${source}, which does not exist`);
      } else if (!(source in (config.volumes ?? {}))) {
        problems.push(`${where}: mounts undeclared volume ${source}`);
      }
    }
    const rule = envRules[name];
    for (const key of Object.keys(svc.environment ?? {})) {
      if (!rule) problems.push(`${where}: sets ${key}, but no rule says which variables it reads`);
      else if (!rule(key)) problems.push(`${where}: sets ${key}, which it does not read`);
    }
    if (svc.ports?.length && name !== 'kong')
      problems.push(`${where}: publishes a port; only kong may`);
    const profiles = svc.profiles ?? [];
    if (isLabService(name, svc) && (profiles.length !== 1 || profiles[0] !== 'lab'))
      problems.push(`${where}: a lab service must be in profile lab alone, not [${profiles}]`);
    else if (!isLabService(name, svc) && profiles.length > 0)
      problems.push(`${where}: only lab services have a profile; it has [${profiles}]`);
    if (svc.build?.target === finalStage) {
      for (const arg of (svc.command ?? []).filter((a) => /^[\w.-]+\/[\w./-]+$/.test(a))) {
        if (!existsSync(path.join(root, arg)))
          problems.push(`${where}: runs ${arg}, which does not exist`);
        else if (!copied.some((src) => arg === src || arg.startsWith(src + '/'))) {
          problems.push(`${where}: runs ${arg}, which the Dockerfile does not copy into the image`);
        }
      }
    }
  }
  const render = services['kong-render'];
  const kong = services.kong;
  if (!render || !kong)
    return [...problems, 'docker-compose.yml: needs services kong-render and kong'];
  const renderEnv = Object.keys(render.environment ?? {});
  for (const p of placeholders) {
    if (!renderEnv.includes(p))
      problems.push(`kong-render: does not pass ${p}, a placeholder of kong/kong.yml`);
  }
  const upstream = /^http:\/\/([\w-]+):(\d+)$/.exec(
    render.environment?.ROUTEPLANE_UPSTREAM_URL ?? '',
  );
  if (!upstream || !services[upstream[1]!])
    problems.push('kong-render: ROUTEPLANE_UPSTREAM_URL names no service');
  else if (
    !(services[upstream[1]!]!.expose ?? []).includes(upstream[2]!) ||
    !facts.exposed.includes(upstream[2]!)
  ) {
    problems.push(
      `kong-render: ROUTEPLANE_UPSTREAM_URL port ${upstream[2]} is not the API's exposed port`,
    );
  }
  const proxyPort = listenPort(kong.environment?.KONG_PROXY_LISTEN);
  // Kong's admin API rewrites its whole configuration, without authentication.
  const adminListen = kong.environment?.KONG_ADMIN_LISTEN;
  if (adminListen === undefined || !isLoopbackOnly(adminListen))
    problems.push(
      `kong: KONG_ADMIN_LISTEN must be off or on 127.0.0.1 only (is ${adminListen ?? 'unset'})`,
    );
  const adminPorts = (adminListen ?? '').split(',').map(listenPort).filter(Boolean);
  for (const p of kong.ports ?? []) {
    const target = typeof p === 'string' ? /(\d+)(\/\w+)?$/.exec(p)?.[1] : String(p.target);
    if (adminPorts.includes(target)) problems.push(`kong: publishes the admin API port ${target}`);
    else if (target !== proxyPort)
      problems.push(`kong: publishes ${target}, but the proxy listens on ${proxyPort}`);
  }
  const output = render.command?.at(-1) ?? '';
  const declarative = kong.environment?.KONG_DECLARATIVE_CONFIG ?? '';
  const into = (svc: string, file: string) => {
    const m = mounts(svc).find((v) => file.startsWith(v.target + '/'));
    return m ? `${m.source}:${file.slice(m.target.length)}` : null;
  };
  if (!into('kong-render', output) || into('kong-render', output) !== into('kong', declarative)) {
    problems.push(
      `kong: KONG_DECLARATIVE_CONFIG ${declarative} is not the file kong-render writes (${output})`,
    );
  }
  return problems;
}
