import { createHash } from 'node:crypto';
import { CONNECTION_VARS } from '../../runs/ssh-masters.ts';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { InventoryHost } from '../../hosts/inventory.ts';
import { hostKey } from '../../runs/ssh-masters.ts';

const bootstrap = (name: 'routeplane-watch' | 'routeplane-probe') =>
  `import sys,base64;exec(compile(base64.b64decode(sys.stdin.buffer.readline()),"${name}","exec"))`;

/**
 * Runs the script that arrives as the first stdin line (base64). A constant: nothing from the
 * inventory or the host ever goes through the remote shell, and it has no `'` or `!` so any
 * login shell reads it the same.
 */
export const BOOTSTRAP = bootstrap('routeplane-watch');

/** The same for the failover prober: its own name in the host's `ps` and in tracebacks. */
export const PROBE_BOOTSTRAP = bootstrap('routeplane-probe');

export const DEFAULT_PYTHON = '/usr/bin/python3';

/** How to start the watch script for one host: a command with its arguments, never a shell. */
export interface WatchTarget {
  kind: 'ssh' | 'local';
  /** The executable: ssh (or ansible_ssh_executable), or the host's python for a local host. */
  file: string;
  /** Arguments without any master option; see watchCommand. */
  args: string[];
  /** The interpreter that runs the script on the host. */
  python: string;
  /** Where and as whom, for logs: `user@address:port` or `local`. */
  destination: string;
  /** The runner's persistent master for this host, when its name could be computed. */
  masterSocket: string | null;
}

export type WatchConnection =
  { watched: true; target: WatchTarget } | { watched: false; reason: string };

export interface WatchConnectionOptions {
  /** The runner's persistent SSH masters (src/runs/ssh-masters.ts); none: connect directly. */
  mastersDir?: string;
  /** The interpreter when the inventory names none (or no absolute path). */
  defaultPython?: string;
  /** Which script the connection starts: the watcher's (default) or the prober's. */
  program?: 'watch' | 'probe';
}

const SSH_CONNECTIONS = new Set(['ssh', 'ansible.builtin.ssh', 'ansible.legacy.ssh', 'smart']);
const LOCAL_CONNECTIONS = new Set(['local', 'ansible.builtin.local', 'ansible.legacy.local']);
const PASSWORD_VARS = ['ansible_password', 'ansible_ssh_pass', 'ansible_ssh_password'];

/** Every variable the watcher's connection is built from. */
const USED_VARS = [
  'ansible_connection',
  'ansible_host',
  'ansible_ssh_host',
  'ansible_port',
  'ansible_ssh_port',
  'ansible_user',
  'ansible_ssh_user',
  'ansible_ssh_private_key_file',
  'ansible_private_key_file',
  'ansible_ssh_common_args',
  'ansible_ssh_extra_args',
  'ansible_ssh_executable',
  'ansible_python_interpreter',
];

/** The runner's list, in its order: a master's socket name is a digest of these. */
const MASTER_VARS = CONNECTION_VARS;

/** Options on every ssh watch connection: no prompt, and a dead path noticed within ~15 s. */
const SSH_OPTIONS = [
  '-o',
  'BatchMode=yes',
  '-o',
  'ServerAliveInterval=5',
  '-o',
  'ServerAliveCountMax=2',
  '-o',
  'ConnectTimeout=5',
];

/** Only such a path is handed to the host's login shell (inside the remote command). */
const PLAIN_PATH = /^\/[A-Za-z0-9_./+-]+$/;

const isTemplate = (v: unknown) => typeof v === 'string' && /\{\{|\{%|\{#/.test(v);

export class ShellWordsError extends Error {
  override name = 'ShellWordsError';
}

/**
 * Splits a string as Python's shlex.split (POSIX mode), which is how Ansible splits
 * ansible_ssh_common_args and ansible_ssh_extra_args; like Ansible, each word is trimmed and
 * empty words are dropped.
 */
export function splitShellWords(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) word += text[++i];
      else word += c;
    } else if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      inWord = true;
      if (c === "'" || c === '"') quote = c;
      else if (c === '\\') {
        if (i + 1 >= text.length) throw new ShellWordsError('No escaped character');
        word += text[++i];
      } else word += c;
    }
  }
  if (quote) throw new ShellWordsError('No closing quotation');
  if (inWord) words.push(word);
  return words.map((w) => w.trim()).filter((w) => w !== '');
}

/** `\uXXXX` for every non-ASCII UTF-16 unit, as Python's json.dumps (ensure_ascii) writes. */
const asciiJson = (text: string) =>
  text.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/**
 * A value as Ansible's `to_json` filter prints it (Python's json.dumps: `, ` and `: `
 * separators, ASCII only); null for what could print differently (floats, mappings).
 */
export function ansibleToJson(value: unknown): string | null {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') {
    return asciiJson(JSON.stringify(value));
  }
  if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value) : null;
  if (Array.isArray(value)) {
    const items = value.map(ansibleToJson);
    return items.every((i) => i !== null) ? `[${items.join(', ')}]` : null;
  }
  return null;
}

/**
 * The socket the runner's persistent master for this host listens on, named exactly as
 * controlPathVar templates it; null when a value could print differently in Ansible.
 */
export function masterSocketPath(dir: string, host: Pick<InventoryHost, 'name' | 'vars'>) {
  const settings = ansibleToJson(MASTER_VARS.map((v) => (v in host.vars ? host.vars[v] : '')));
  if (settings === null) return null;
  const digest = createHash('sha1').update(settings, 'utf8').digest('hex').slice(0, 16);
  return path.join(dir, `${hostKey(host.name)}-${digest}`);
}

const text = (v: unknown): string | null =>
  typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : null;

function pythonOf(vars: Record<string, unknown>, fallback: string): string | { reason: string } {
  const given = vars.ansible_python_interpreter;
  if (typeof given !== 'string' || !given.startsWith('/')) return fallback;
  if (!PLAIN_PATH.test(given)) {
    return { reason: `ansible_python_interpreter ${JSON.stringify(given)} is not a plain path` };
  }
  return given;
}

/**
 * How the watcher reaches a host, from its inventory variables: a local host runs the script
 * here, an ssh host through ssh with its inventory settings. Anything else (another
 * connection plugin, a templated setting, a password) is not watched, with the reason.
 */
export function watchConnection(
  host: Pick<InventoryHost, 'name' | 'vars' | 'local'>,
  options: WatchConnectionOptions = {},
): WatchConnection {
  const vars = host.vars;
  for (const v of USED_VARS) {
    if (isTemplate(vars[v])) {
      return { watched: false, reason: `${v} is a template, resolved only in an Ansible run` };
    }
  }
  const connection = vars.ansible_connection ?? 'ssh';
  const isLocal = typeof connection === 'string' && LOCAL_CONNECTIONS.has(connection);
  if (!isLocal && !(typeof connection === 'string' && SSH_CONNECTIONS.has(connection))) {
    return {
      watched: false,
      reason: `ansible_connection ${JSON.stringify(connection)} is not ssh or local`,
    };
  }
  const python = pythonOf(vars, options.defaultPython ?? DEFAULT_PYTHON);
  const boot = options.program === 'probe' ? PROBE_BOOTSTRAP : BOOTSTRAP;
  if (typeof python !== 'string') return { watched: false, reason: python.reason };
  if (host.local || isLocal) {
    return {
      watched: true,
      target: {
        kind: 'local',
        file: python,
        args: ['-u', '-c', boot],
        python,
        destination: 'local',
        masterSocket: null,
      },
    };
  }
  const password = PASSWORD_VARS.find((v) => vars[v] !== undefined && vars[v] !== null);
  if (password) {
    return { watched: false, reason: `${password} is set: the watcher logs in with keys only` };
  }
  const address = text(vars.ansible_host) ?? text(vars.ansible_ssh_host) ?? host.name;
  const port = text(vars.ansible_port) ?? text(vars.ansible_ssh_port);
  const user = text(vars.ansible_user) ?? text(vars.ansible_ssh_user);
  const key = text(vars.ansible_ssh_private_key_file) ?? text(vars.ansible_private_key_file);
  const extra: string[] = [];
  for (const v of ['ansible_ssh_common_args', 'ansible_ssh_extra_args']) {
    const value = vars[v];
    if (value === undefined || value === null || value === '') continue;
    if (typeof value !== 'string') return { watched: false, reason: `${v} is not a string` };
    try {
      extra.push(...splitShellWords(value));
    } catch (err) {
      return { watched: false, reason: `${v} cannot be split: ${(err as Error).message}` };
    }
  }
  // As Ansible orders them: its own settings first (ssh keeps the first value of an option),
  // then the inventory's common and extra arguments.
  const args = ['-T', '-x', '-a', ...SSH_OPTIONS];
  if (port) args.push('-p', port);
  if (key) args.push('-i', key);
  if (user) args.push('-l', user);
  args.push(...extra, '--', address, `${python} -u -c '${boot}'`);
  const executable = text(vars.ansible_ssh_executable) ?? 'ssh';
  const where = address.includes(':') ? `[${address}]` : address;
  return {
    watched: true,
    target: {
      kind: 'ssh',
      file: executable,
      args,
      python,
      destination: `${user ? `${user}@` : ''}${where}${port ? `:${port}` : ''}`,
      masterSocket: options.mastersDir ? masterSocketPath(options.mastersDir, host) : null,
    },
  };
}

/**
 * The command for one connection attempt: through the runner's master when its socket is
 * there (never as a master itself: a watcher's session must not carry runs), else direct.
 */
export function watchCommand(
  target: WatchTarget,
  masterAvailable: boolean,
): { file: string; args: string[]; viaMaster: boolean } {
  if (target.kind === 'local') return { file: target.file, args: target.args, viaMaster: false };
  const via = masterAvailable && target.masterSocket !== null;
  const control = via
    ? ['-o', `ControlPath=${target.masterSocket}`, '-o', 'ControlMaster=no']
    : ['-o', 'ControlPath=none', '-o', 'ControlMaster=no'];
  return { file: target.file, args: [...control, ...target.args], viaMaster: via };
}

/** The process a watcher talks to; the real one is ssh (or a local python). */
export interface WatchChild {
  readonly pid?: number;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  kill(signal: NodeJS.Signals): boolean;
  /** Settles once the process has exited; `notStarted` says why it never ran. */
  readonly exited: Promise<WatchExit>;
}

export interface WatchExit {
  exitCode: number | null;
  signal: string | null;
  notStarted?: string;
}

export type WatchSpawner = (file: string, args: string[]) => WatchChild;

/**
 * Starts ssh or python as a child of its own: an argument array, never a shell, killed when
 * routeplane exits. `env` replaces the environment (tests); routeplane's own by default.
 */
export const watchSpawner =
  (env?: Record<string, string>): WatchSpawner =>
  (file, args) => {
    const child = execa(file, args, {
      ...(env ? { env, extendEnv: false } : {}),
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      cleanup: true,
      forceKillAfterDelay: false,
    });
    return {
      pid: child.pid,
      stdin: child.stdin,
      stdout: child.stdout,
      stderr: child.stderr,
      kill: (signal) => child.kill(signal),
      exited: child.then((r) => {
        const exitCode = typeof r.exitCode === 'number' ? r.exitCode : null;
        const signal = r.signal ?? null;
        const notStarted =
          exitCode === null && signal === null ? (r.originalMessage ?? r.message) : undefined;
        return { exitCode, signal, notStarted };
      }),
    };
  };

export const spawnWatchProcess: WatchSpawner = watchSpawner();

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../../..');

/**
 * The source sent to each host: routeplane_kernel.py (the one normalisation every module
 * uses) followed by remote-watch.py. Read from the files each time it is called.
 */
export async function loadWatchScript(
  options: { playbooksDir?: string; scriptPath?: string } = {},
): Promise<string> {
  const kernel = path.join(
    options.playbooksDir ?? path.join(REPO, 'playbooks'),
    'module_utils',
    'routeplane_kernel.py',
  );
  // A build (dist/) has no .py files of its own: the source tree's copy then.
  const script =
    options.scriptPath ??
    [path.join(HERE, 'remote-watch.py'), path.join(REPO, 'src/live/watch/remote-watch.py')].find(
      (p) => existsSync(p),
    ) ??
    path.join(HERE, 'remote-watch.py');
  const [k, s] = await Promise.all([readFile(kernel, 'utf8'), readFile(script, 'utf8')]);
  return `${k}\n\n${s}`;
}
