#!/usr/bin/env node
// Deploy-time render step: fills the placeholders of kong/kong.yml from the environment and
// writes the config Kong reads. DB-less Kong substitutes nothing in its declarative file, and
// key-auth keys cannot be vault references, so this is where the secrets enter.
//
//   node scripts/kong-render.mjs <kong.yml> <output>
//
// `${NAME}` must be set; `${NAME:-}` may be empty, and a key-auth credential left empty is
// dropped (the optional second key used while rotating). NAME_FILE, when set, names a file
// holding the value instead (Docker secrets). Plain JavaScript so the runtime image runs it
// with node alone.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dump, load } from 'js-yaml';

const PLACEHOLDER = /\$\{([A-Z][A-Z0-9_]*)(:-)?\}/g;

// Secrets end up in request-transformer values, where `$(...)` is template syntax: allow only
// characters that openssl rand -hex / -base64 produce.
const SECRET = /^[A-Za-z0-9._~+/=-]{32,}$/;
const RULES = [
  {
    match: (n) => n === 'GATEWAY_SECRET' || n.startsWith('KONG_KEY_'),
    valid: SECRET,
    what: '32+ characters of [A-Za-z0-9._~+/=-] (openssl rand -hex 32)',
  },
  {
    match: (n) => n === 'UI_ORIGIN',
    valid: /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/,
    what: 'an origin like https://ui.example.org',
  },
  { match: (n) => n.endsWith('_URL'), valid: /^https?:\/\/[^\s'"]+$/, what: 'an http(s) URL' },
];

export class RenderError extends Error {}

function valueOf(name, env) {
  const file = env[`${name}_FILE`];
  if (file) {
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new RenderError(`${name}_FILE: cannot read ${file} (${err.code ?? err.message})`);
    }
  }
  return env[name] ?? '';
}

function strings(node) {
  if (typeof node === 'string') return [node];
  if (node && typeof node === 'object') return Object.values(node).flatMap(strings);
  return [];
}

/** A value for every placeholder in `config`; all problems are reported at once, by name only. */
export function resolvePlaceholders(config, env) {
  const values = new Map();
  const problems = [];
  for (const [, name, optional] of strings(config).flatMap((s) => [...s.matchAll(PLACEHOLDER)])) {
    if (values.has(name)) continue;
    values.set(name, '');
    const rule = RULES.find((r) => r.match(name));
    if (!rule) {
      problems.push(`${name}: no rule for this placeholder`);
      continue;
    }
    let value;
    try {
      value = valueOf(name, env);
    } catch (err) {
      problems.push(err.message);
      continue;
    }
    if (value === '' && !optional) problems.push(`${name}: is not set`);
    else if (value.startsWith('change-me')) problems.push(`${name}: still has the example value`);
    else if (value !== '' && !rule.valid.test(value))
      problems.push(`${name}: must be ${rule.what}`);
    values.set(name, value);
  }
  if (problems.length > 0) throw new RenderError(problems.join('\n'));
  return values;
}

function substitute(node, values) {
  if (typeof node === 'string') return node.replace(PLACEHOLDER, (_, name) => values.get(name));
  if (Array.isArray(node)) return node.map((item) => substitute(item, values));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, substitute(v, values)]));
  }
  return node;
}

/** The rendered configuration text for the committed template `text`. */
export function renderKongConfig(text, env) {
  const template = load(text);
  const config = substitute(template, resolvePlaceholders(template, env));
  const owners = new Map();
  for (const consumer of config.consumers ?? []) {
    consumer.keyauth_credentials = (consumer.keyauth_credentials ?? []).filter((c) => c.key !== '');
    if (consumer.keyauth_credentials.length === 0) {
      throw new RenderError(`consumer ${consumer.username}: has no key`);
    }
    for (const { key } of consumer.keyauth_credentials) {
      if (owners.has(key)) {
        throw new RenderError(`consumers ${owners.get(key)} and ${consumer.username} share a key`);
      }
      owners.set(key, consumer.username);
    }
  }
  const out = dump(config, { noRefs: true, lineWidth: -1 });
  // Anything else that looks like a placeholder (`${lower}`, `${NAME:-default}`) is not one
  // this step fills, and Kong would take it literally.
  const survivors = [...new Set(out.match(/\$\{[^}\s]*\}?/g) ?? [])];
  if (survivors.length > 0) {
    throw new RenderError(
      `${survivors.join(', ')}: not a placeholder (\${NAME} or \${NAME:-}), left unfilled`,
    );
  }
  return `# Rendered by scripts/kong-render.mjs from kong/kong.yml. Holds secrets: never commit.\n${out}`;
}

function main(argv) {
  const [input, output] = argv;
  if (!input || !output) {
    process.stderr.write('usage: kong-render.mjs <kong.yml> <output>\n');
    return 2;
  }
  let text;
  try {
    text = renderKongConfig(readFileSync(input, 'utf8'), process.env);
  } catch (err) {
    if (!(err instanceof RenderError)) throw err;
    process.stderr.write(`kong-render: ${input}:\n${err.message}\n`);
    return 1;
  }
  // Kong runs as another user and must read it; the volume is shared with Kong alone.
  const tmp = path.join(path.dirname(output), `.${path.basename(output)}.${process.pid}`);
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, output);
  process.stdout.write(`kong-render: wrote ${output}\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  process.exitCode = main(process.argv.slice(2));
}
