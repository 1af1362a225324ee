// Plumbing shared by the routes benchmarks (routes-bulk, routes-burst, routes-latency,
// schedule-precision): a fleet of lab hosts behind one inventory, the kernel's view of
// routeplane's routes, the API, and ansible-playbook run bare the way AnsibleRunner runs it
// (for apply.yml: in a run workspace holding each host's desired file, as the reconciler
// writes it).
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa, type ResultPromise } from 'execa';
import { dump, load } from 'js-yaml';
import { ManagementAddresses } from '../src/hosts/management-address.ts';
import { MAX_HOSTS, type Lab } from '../src/lab/index.ts';
import { APPLY_PLAYBOOK } from '../src/reconciler/reconciler.ts';
import { moduleRoutesPayload, routesOfPayload } from '../src/routes/route-results.ts';
import { RoutesKind } from '../src/routes/routes-kind.ts';
import { RoutesStore } from '../src/routes/routes-store.ts';
import { extractJsonl } from '../src/runs/json-extractor.ts';
import { closeSshMasters } from '../src/runs/process-reaper.ts';
import { createWorkspace, removeWorkspace } from '../src/runs/run-workspace.ts';
import type { RunningServer } from '../src/server.ts';
import { ADMIN_TOKEN, PLAYBOOKS_DIR, benchLab, tempDir, type Cleanup } from './lib.ts';
import { ansibleRunEnvironment } from '../src/runs/ansible-environment.ts';

/** routeplane's default ROUTE_PROTO: the marker on every route it (and the baselines) install. */
export const PROTO = 147;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface FleetHost {
  /** Inventory name, h1..hN across all labs of the fleet. */
  name: string;
  netns: string;
  ipv4: string;
}

export interface Fleet {
  hosts: FleetHost[];
  /** One inventory (group `lab`) naming every host of every lab. */
  inventoryPath: string;
}

/**
 * `count` lab hosts. A lab holds at most MAX_HOSTS (or `perLab`, when given), so larger fleets
 * are several labs whose inventories are merged into one (hosts renumbered h1..hN, lab after
 * lab); every lab is taken down by cleanup.
 */
export async function benchFleet(
  cleanup: Cleanup,
  count: number,
  opts: { perLab?: number } = {},
): Promise<Fleet> {
  const perLab = Math.min(MAX_HOSTS, opts.perLab ?? MAX_HOSTS);
  const sizes: number[] = [];
  for (let left = count; left > 0; left -= perLab) sizes.push(Math.min(perLab, left));
  // allSettled: a lab that comes up after another failed must still be registered for cleanup.
  const settled = await Promise.allSettled(sizes.map((n) => benchLab(cleanup, n)));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  const labs = settled.map((s) => (s as PromiseFulfilledResult<Lab>).value);
  if (labs.length === 1) {
    const lab = labs[0]!;
    return {
      hosts: lab.hosts.map((h) => ({ name: h.name, netns: h.netns, ipv4: h.ipv4 })),
      inventoryPath: lab.inventoryPath,
    };
  }
  const hosts: FleetHost[] = [];
  const vars: Record<string, unknown> = {};
  for (const lab of labs) {
    const doc = load(await readFile(lab.inventoryPath, 'utf8')) as {
      lab: { hosts: Record<string, Record<string, unknown>> };
    };
    for (const h of lab.hosts) {
      const name = `h${hosts.length + 1}`;
      hosts.push({ name, netns: h.netns, ipv4: h.ipv4 });
      vars[name] = { ...doc.lab.hosts[h.name], lab_id: lab.id };
    }
  }
  const dir = await tempDir(cleanup, 'fleet');
  const inventoryPath = path.join(dir, 'inventory.yml');
  await writeFile(
    inventoryPath,
    `# routeplane bench fleet: labs ${labs.map((l) => l.id).join(', ')}\n` +
      dump({ lab: { hosts: vars } }, { lineWidth: -1 }),
  );
  return { hosts, inventoryPath };
}

/** How many routes carrying routeplane's marker the host's kernel has (both families). */
export async function kernelCount(netns: string): Promise<number> {
  const { stdout } = await execa('ip', [
    '-n',
    netns,
    '-N',
    '-j',
    'route',
    'show',
    'proto',
    String(PROTO),
    'table',
    'all',
  ]);
  return (JSON.parse(stdout || '[]') as unknown[]).length;
}

/** Removes every route carrying routeplane's marker from the host's kernel. */
export async function flushOwned(netns: string): Promise<void> {
  for (const family of ['-4', '-6']) {
    await execa('ip', [
      '-n',
      netns,
      family,
      'route',
      'flush',
      'proto',
      String(PROTO),
      'table',
      'all',
    ]);
  }
}

export async function flushAll(hosts: FleetHost[]): Promise<void> {
  await Promise.all(hosts.map((h) => flushOwned(h.netns)));
  for (const h of hosts) {
    const n = await kernelCount(h.netns);
    if (n !== 0) throw new Error(`${h.name}: ${n} routes left after flush`);
  }
}

/**
 * Counts a namespace's marked routes on demand through one long-lived `ip -j -batch -` (a
 * command per query, one JSON line per answer): polling every 100 ms costs no process spawn,
 * which from the benchmark's process (the server's too) would stall its event loop.
 */
export class KernelPoller {
  private readonly child: ResultPromise;
  private pending: ((line: string) => void)[] = [];
  private rest = '';

  constructor(readonly host: FleetHost) {
    this.child = execa('ip', ['-n', host.netns, '-j', '-batch', '-'], {
      reject: false,
      buffer: false,
      stdin: 'pipe',
    });
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      const lines = (this.rest + chunk).split('\n');
      this.rest = lines.pop()!;
      for (const line of lines) this.pending.shift()?.(line);
    });
  }

  count(): Promise<number> {
    return new Promise((resolve) => {
      // Each route of the JSON array has exactly one "dst" key.
      this.pending.push((line) => resolve(line.split('"dst":').length - 1));
      this.child.stdin!.write(`route show proto ${PROTO} table all\n`);
    });
  }

  async close(): Promise<void> {
    this.child.stdin!.end();
    await this.child;
  }
}

/** A poller per host, closed by cleanup. */
export function kernelPollers(cleanup: Cleanup, hosts: FleetHost[]): KernelPoller[] {
  const pollers = hosts.map((h) => new KernelPoller(h));
  cleanup.defer('kernel pollers', async () => {
    await Promise.all(pollers.map((p) => p.close()));
  });
  return pollers;
}

/**
 * Polls the kernels until each host has `expected` marked routes; resolves with the time
 * (performance.now()) at which the last host got there. Only hosts not yet complete are polled.
 */
export async function kernelsReach(
  pollers: KernelPoller[],
  expected: number,
  opts: {
    pollMs?: number;
    timeoutMs?: number;
    /** Told when each host's kernel is first seen complete (performance.now()). */
    onHost?: (host: string, at: number) => void;
  } = {},
): Promise<number> {
  const pollMs = opts.pollMs ?? 100;
  const deadline = performance.now() + (opts.timeoutMs ?? 120_000);
  let waiting = [...pollers];
  let last = performance.now();
  while (waiting.length > 0) {
    const counts = await Promise.all(waiting.map((p) => p.count()));
    const now = performance.now();
    const still = waiting.filter((_, i) => counts[i]! < expected);
    waiting.forEach((p, i) => counts[i]! >= expected && opts.onHost?.(p.host.name, now));
    if (still.length < waiting.length) last = now;
    waiting = still;
    if (waiting.length === 0) break;
    if (now > deadline) {
      throw new Error(
        `kernels did not reach ${expected} routes: ${waiting.map((p) => p.host.name).join(', ')}`,
      );
    }
    await sleep(pollMs);
  }
  return last;
}

export async function assertKernelCounts(hosts: FleetHost[], expected: number): Promise<void> {
  for (const h of hosts) {
    const n = await kernelCount(h.netns);
    if (n !== expected)
      throw new Error(`${h.name}: ${n} routes in the kernel, expected ${expected}`);
  }
}

/** N distinct destinations: IPv4 /32s from 203.0.113.0/24 first, then IPv6 /64s. */
export function destinations(n: number, ipv4 = 0, offset = 0): string[] {
  const v4 = Math.min(ipv4, 256);
  return Array.from({ length: n }, (_, k) => {
    const i = k + offset;
    if (i < v4) return `203.0.113.${i}/32`;
    // 2001:db8:f000:N::/64 stays inside 2001:db8:f000::/36 for N < 0x10000; canonical text
    // (as the API and `ip` print it), so N = 0 is 2001:db8:f000::/64.
    const n = i - v4;
    return n === 0 ? '2001:db8:f000::/64' : `2001:db8:f000:${n.toString(16)}::/64`;
  });
}

export interface ApiAnswer<T = unknown> {
  status: number;
  body: T;
  ms: number;
}

/** One request to routeplane as the admin; the body parsed as JSON. */
export async function api<T = unknown>(
  server: RunningServer,
  method: string,
  url: string,
  body?: unknown,
): Promise<ApiAnswer<T>> {
  const t0 = performance.now();
  const res = await fetch(server.url + url, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: (text ? JSON.parse(text) : null) as T,
    ms: performance.now() - t0,
  };
}

export interface ApiRoute {
  id: string;
  host: string;
  to: string;
  status: string;
  created_at: string;
  sync: { state: string; error: string | null; run_id: string | null };
}

/** Apply runs recorded so far (GET /v1/runs?kind=apply). */
export async function applyRunCount(server: RunningServer): Promise<number> {
  const r = await api<{ total: number }>(server, 'GET', '/v1/runs?kind=apply&limit=1');
  if (r.status !== 200) throw new Error(`GET /v1/runs: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.total;
}

export interface ApiRun {
  id: string;
  status: string;
  hosts: string[];
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

/** The newest `count` apply runs, oldest first, with their queue and run durations. */
export async function recentApplyRuns(
  server: RunningServer,
  count: number,
): Promise<(ApiRun & { queueMs: number; runMs: number })[]> {
  if (count <= 0) return [];
  const r = await api<{ items: ApiRun[] }>(server, 'GET', `/v1/runs?kind=apply&limit=${count}`);
  return r.body.items
    .map((run) => ({
      ...run,
      queueMs: Date.parse(run.started_at ?? run.created_at) - Date.parse(run.created_at),
      runMs:
        Date.parse(run.finished_at ?? run.created_at) -
        Date.parse(run.started_at ?? run.created_at),
    }))
    .sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at));
}

/**
 * The routes module's arguments for one host, routes as a list: `applyHostVars` writes them as
 * `RoutesKind` does (one payload string).
 */
export interface RoutesArgs {
  proto: number;
  routes: Record<string, unknown>[];
}

/** An apply run's desired files: per host, the variables of `desired/<host>.json`. */
export type ApplyHostVars = Record<string, Record<string, unknown>>;

let lastEpoch = 0;

/**
 * A lock epoch for a bare apply run, made as the work rows make them: at least the current
 * time in milliseconds and above the last one. The host-side fence then takes the bare run as
 * the newest, and the server's next claim (`greatest(epoch + 1, now in ms)`) ranks above it.
 */
export function benchEpoch(): number {
  lastEpoch = Math.max(Date.now(), lastEpoch + 1);
  return lastEpoch;
}

/**
 * Each host's routes as the reconciler renders them for a run (`RoutesKind.render` on the
 * server's database: its active routes, mapped by `moduleRoute`).
 */
export async function desiredFromServer(
  server: RunningServer,
  hosts: string[],
): Promise<Map<string, RoutesArgs>> {
  const { db, work } = server.services;
  const rendered = await new RoutesKind(new RoutesStore(db.knex, work), PROTO).render(hosts);
  return new Map(
    hosts.map((h) => {
      const args = rendered.get(h)!.args;
      return [h, { proto: args.proto as number, routes: routesOfPayload(args.routes) }];
    }),
  );
}

/**
 * The desired files the reconciler's `startRun` writes for a run that carries a write (so
 * `routeplane_repair` is true): the fence with a fresh epoch, the host's management address
 * computed the same way (`ip route get` towards its ansible_host), and its routes.
 */
export async function applyHostVars(
  server: RunningServer,
  routes: Map<string, RoutesArgs>,
): Promise<ApplyHostVars> {
  const hosts = [...routes.keys()];
  const mgmt = await new ManagementAddresses(server.services.inventory).of(hosts);
  const epoch = benchEpoch();
  const vars: ApplyHostVars = {};
  for (const host of hosts) {
    vars[host] = {
      routeplane_fence: { name: host, epoch },
      routeplane_repair: true,
      routeplane_management_address: mgmt[host] ?? null,
      routeplane_routes: {
        ...routes.get(host)!,
        routes: moduleRoutesPayload(routes.get(host)!.routes),
      },
    };
  }
  return vars;
}

// The environment AnsibleRunner gives ansible-playbook (src/runs/ansible-environment.ts, the
// same function): the jsonl callback, pipelining, the SSH arguments, with the run's own fresh
// ControlPath dir and local temp dir.
export function ansibleEnv(
  dirs: { cp: string; tmp: string },
  libraryDir = path.join(PLAYBOOKS_DIR, 'library'),
): Record<string, string> {
  return ansibleRunEnvironment({ controlPathDir: dirs.cp, localTempDir: dirs.tmp, libraryDir }, 0);
}

export interface BareRun {
  /** ansible-playbook start to exit. */
  ms: number;
  /** Per host, the last task's result (the module's counts and changes) or the failure. */
  hosts: Record<string, Record<string, unknown>>;
}

/**
 * ansible-playbook by hand: a playbook (a catalog one, gather_state.yml, a generated one) with
 * extravars from a JSON file, the runner's environment, a fresh SSH control dir; fails unless
 * every host ran every task without failure. SSH masters are closed afterwards, outside the
 * timing. For routeplane's apply playbook use `bareApply`.
 */
export async function bareAnsible(opts: {
  scratch: string;
  inventoryPath: string;
  hosts: string[];
  extravars: Record<string, unknown>;
  playbook: string;
  onSpawn?: (child: ResultPromise) => void;
}): Promise<BareRun> {
  const dir = await mkdtemp(path.join(opts.scratch, 'bare-'));
  try {
    const dirs = { cp: path.join(dir, 'cp'), tmp: path.join(dir, 'tmp') };
    await mkdir(dirs.cp, { mode: 0o700 });
    await mkdir(dirs.tmp, { mode: 0o700 });
    const extravarsPath = path.join(dir, 'extravars.json');
    await writeFile(extravarsPath, JSON.stringify(opts.extravars), { mode: 0o600 });
    return await spawnBare({
      cwd: dir,
      dirs,
      hosts: opts.hosts,
      args: ['-i', opts.inventoryPath, '-e', `@${extravarsPath}`, '--limit', opts.hosts.join(',')],
      playbook: opts.playbook,
      onSpawn: opts.onSpawn,
    });
  } finally {
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

/**
 * routeplane's apply playbook (playbooks/apply.yml) by hand, exactly as an apply run gets it:
 * a workspace built by the runner's own `createWorkspace` (a copy of the playbooks, library and
 * inventory, an empty extravars file, and `project/desired/<host>.json` per host with every
 * value marked unsafe), then ansible-playbook on the copy with the runner's arguments. Only
 * ansible-playbook is timed, not building the workspace. A host whose module task failed is a
 * failure here too (the playbook ignores task errors so that later kinds still run).
 */
export async function bareApply(opts: {
  scratch: string;
  inventoryPath: string;
  hostVars: ApplyHostVars;
  onSpawn?: (child: ResultPromise) => void;
}): Promise<BareRun> {
  const hosts = Object.keys(opts.hostVars);
  const ws = await createWorkspace({
    playbookRoot: PLAYBOOKS_DIR,
    libraryDir: path.join(PLAYBOOKS_DIR, 'library'),
    inventoryPath: opts.inventoryPath,
    extravars: {},
    hostVars: opts.hostVars,
    vaultPassword: undefined,
    parentDir: opts.scratch,
  });
  try {
    return await spawnBare({
      cwd: ws.dir,
      dirs: { cp: ws.controlPathDir, tmp: ws.localTempDir },
      libraryDir: ws.libraryDir,
      hosts,
      args: ['-i', ws.inventoryPath, '-e', `@${ws.extravarsPath}`, '--limit', hosts.join(',')],
      playbook: path.join(ws.projectDir, APPLY_PLAYBOOK.file),
      onSpawn: opts.onSpawn,
    });
  } finally {
    await removeWorkspace(ws);
  }
}

async function spawnBare(opts: {
  cwd: string;
  dirs: { cp: string; tmp: string };
  libraryDir?: string;
  hosts: string[];
  args: string[];
  playbook: string;
  onSpawn?: (child: ResultPromise) => void;
}): Promise<BareRun> {
  const t0 = performance.now();
  const child = execa('ansible-playbook', [...opts.args, opts.playbook], {
    cwd: opts.cwd,
    env: ansibleEnv(opts.dirs, opts.libraryDir),
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    maxBuffer: { stdout: 512 * 1024 * 1024 },
  });
  opts.onSpawn?.(child);
  const r = await child;
  const elapsed = performance.now() - t0;
  await closeSshMasters(opts.dirs.cp, opts.cwd);
  const out = extractJsonl(String(r.stdout));
  const hosts: Record<string, Record<string, unknown>> = {};
  for (const h of opts.hosts) {
    const last = out.results.filter((t) => t.host === h).at(-1);
    hosts[h] = last ? { ...last.data, failed: last.status === 'failed', msg: last.msg } : {};
  }
  const bad = opts.hosts.filter(
    (h) =>
      !out.summary[h] ||
      out.summary[h].status === 'failed' ||
      out.summary[h].status === 'unreachable' ||
      out.results.some((t) => t.host === h && t.status === 'failed'),
  );
  if (r.exitCode !== 0 || bad.length > 0) {
    const why = bad.map((h) => `${h}: ${String(hosts[h]?.msg ?? '')}`).join('; ');
    throw new Error(
      `bare ansible-playbook failed (rc ${r.exitCode}, hosts ${bad.join(',')}): ${why} ` +
        `${String(r.stderr).slice(-1500)} ${String(r.stdout).slice(-1500)}`,
    );
  }
  return { ms: elapsed, hosts };
}

/**
 * The physical limit: `ip netns exec <ns> ip -batch <file>` in every host's namespace at once,
 * from prepared files; resolves when all have exited.
 */
export async function ipBatchFiles(
  hosts: FleetHost[],
  file: (h: FleetHost) => string,
): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    hosts.map((h) => execa('ip', ['netns', 'exec', h.netns, 'ip', '-batch', file(h)])),
  );
  return performance.now() - t0;
}

/**
 * "The floor with Ansible": the cheapest way to do the same with Ansible at all. One
 * `ansible.builtin.command: ip -batch -` task per host, fed its prepared file of the same lines
 * on stdin (a `file` lookup, as an opaque string), run by `bareAnsible` the way AnsibleRunner
 * runs ansible-playbook. `dir` holds the playbook and `files/<host>.batch`.
 */
export async function floorAnsible(opts: {
  scratch: string;
  inventoryPath: string;
  dir: string;
  hosts: string[];
}): Promise<BareRun> {
  const playbook = path.join(opts.dir, 'floor.yml');
  await writeFile(
    playbook,
    dump(
      [
        {
          name: 'The floor: ip -batch per host',
          hosts: 'all',
          gather_facts: false,
          tasks: [
            {
              name: 'ip -batch',
              'ansible.builtin.command': {
                cmd: 'ip -batch -',
                stdin: "{{ lookup('ansible.builtin.file', inventory_hostname ~ '.batch') }}",
              },
            },
          ],
        },
      ],
      { lineWidth: -1 },
    ),
  );
  return bareAnsible({ ...opts, extravars: {}, playbook });
}

/** When the apply module ran on a host: its fence's log lines (module start and exit). */
export interface ModuleWindow {
  host: string;
  start: number;
  end: number;
}

/**
 * The apply module's own start and end on each host after `sinceEpochMs` (wall clock, ms), from
 * the host-side fence log (playbooks/module_utils/routeplane_fence.py: a line when the module
 * takes the fence, one when its process exits), found as the module names it: by inventory name
 * and the namespace's inode. Lab hosts share /run, so the benchmark reads them directly.
 */
export async function moduleWindows(
  hosts: FleetHost[],
  sinceEpochMs: number,
): Promise<ModuleWindow[]> {
  const out: ModuleWindow[] = [];
  for (const h of hosts) {
    const ino = (await stat(`/run/netns/${h.netns}`)).ino;
    const safe = h.name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 100);
    const text = await readFile(`/run/lock/routeplane-${safe}-${ino}.log`, 'utf8').catch(() => '');
    const starts = new Map<string, number>();
    for (const line of text.split('\n')) {
      const [at, what, epoch, pid] = line.split(' ');
      const ms = Number(at) * 1000;
      if (!(ms >= sinceEpochMs)) continue;
      const key = `${epoch} ${pid}`;
      if (what === 'start') starts.set(key, ms);
      else if (what === 'end' && starts.has(key)) {
        out.push({ host: h.name, start: starts.get(key)!, end: ms });
        starts.delete(key);
      }
    }
  }
  return out;
}

/** `ip -batch` of `lines` in each host's namespace at once; resolves when all have exited. */
export async function ipBatchAll(
  hosts: FleetHost[],
  lines: (h: FleetHost) => string[],
): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    hosts.map((h) =>
      execa('ip', ['-n', h.netns, '-batch', '-'], { input: `${lines(h).join('\n')}\n` }),
    ),
  );
  return performance.now() - t0;
}
