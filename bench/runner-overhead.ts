// What does routeplane add on top of ansible-playbook? A catalog playbook run through the API
// (POST /v1/runs?wait=..., admin token) against a lab of N hosts, against the same playbook run
// by bare ansible-playbook with an equivalent inventory and environment. Prints medians of K
// repetitions and their ratio (goal: at most 1.1x), plus a naive peer and a breakdown.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { MAX_HOSTS, type Lab } from '../src/lab/index.ts';
import { parseCallbackJson } from '../src/runs/json-extractor.ts';
import { closeSshMasters, pidsMentioning } from '../src/runs/process-reaper.ts';
import { createWorkspace, removeWorkspace } from '../src/runs/run-workspace.ts';
import {
  ADMIN_TOKEN,
  CATALOG_DIR,
  PLAYBOOKS_DIR,
  benchLab,
  benchServer,
  databaseLabel,
  envInt,
  isMain,
  log,
  median,
  ms,
  ratio,
  runAsScript,
  table,
  tempDir,
  withCleanup,
  type BenchResult,
} from './lib.ts';

const NAME = 'runner-overhead';
const DEADLINE_MS = 290_000;
const ANSIBLE_PLAYBOOK = 'ansible-playbook';

interface Settings {
  hosts: number;
  reps: number;
  playbook: string;
}

function settings(): Settings {
  const playbook = process.env.BENCH_PLAYBOOK || 'ping';
  if (!/^[a-z0-9_-]+$/.test(playbook)) throw new Error(`BENCH_PLAYBOOK: bad name ${playbook}`);
  return {
    hosts: envInt('BENCH_HOSTS', 5, 1, MAX_HOSTS),
    reps: envInt('BENCH_REPS', 5, 1, 50),
    playbook,
  };
}

// The environment AnsibleRunner gives ansible-playbook (src/runs/ansible-runner.ts), minus the
// per-run directories, which each variant below chooses.
const INHERITED_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ', 'SSH_AUTH_SOCK'];

function inherited(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of INHERITED_ENV) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return env;
}

function equivalentEnv(dirs: { cp: string; tmp: string }): Record<string, string> {
  return {
    ...inherited(),
    ANSIBLE_STDOUT_CALLBACK: 'ansible.posix.json',
    ANSIBLE_LOAD_CALLBACK_PLUGINS: 'True',
    ANSIBLE_PIPELINING: 'True',
    ANSIBLE_HOST_KEY_CHECKING: 'True',
    ANSIBLE_RETRY_FILES_ENABLED: 'False',
    ANSIBLE_NOCOLOR: 'True',
    ANSIBLE_FORCE_COLOR: 'False',
    ANSIBLE_SSH_CONTROL_PATH_DIR: dirs.cp,
    ANSIBLE_LOCAL_TEMP: dirs.tmp,
    ANSIBLE_LIBRARY: path.join(PLAYBOOKS_DIR, 'library'),
    ANSIBLE_PYTHON_INTERPRETER: 'auto_silent',
    ANSIBLE_DEPRECATION_WARNINGS: 'False',
    ANSIBLE_SYSTEM_WARNINGS: 'False',
    PYTHONUNBUFFERED: '1',
  };
}

/** Stock ansible as a person would run it: default callback, no pipelining. */
function naiveEnv(dirs: { cp: string; tmp: string }): Record<string, string> {
  return {
    ...inherited(),
    // Kept out of /root/.ansible, and fresh per run like the others; nothing else is set.
    ANSIBLE_SSH_CONTROL_PATH_DIR: dirs.cp,
    ANSIBLE_LOCAL_TEMP: dirs.tmp,
  };
}

type Variant = 'api' | 'bare' | 'naive' | 'warm';

interface ApiSample {
  totalMs: number;
  /** request sent → run row inserted (HTTP, auth, validation, catalog, inventory, insert) */
  acceptMs: number;
  /** inserted → marked running (slot, update) */
  queueMs: number;
  /** running → finished (workspace, ansible-playbook, SSH master cleanup, extraction, update) */
  runMs: number;
  /** finished → response read (post-run hooks, presenting, HTTP) */
  replyMs: number;
}

interface RunBody {
  status: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  summary: Record<string, { status: string }>;
  error: string | null;
}

async function apiRun(url: string, s: Settings): Promise<ApiSample> {
  const sentAt = Date.now();
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/runs?wait=120`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ playbook: s.playbook }),
  });
  const text = await res.text();
  const totalMs = performance.now() - t0;
  const receivedAt = Date.now();
  const run = JSON.parse(text) as RunBody;
  const okHosts = Object.values(run.summary ?? {}).filter((h) => h.status === 'ok').length;
  if (res.status !== 201 || run.status !== 'succeeded' || okHosts !== s.hosts) {
    throw new Error(`API run did not succeed on ${s.hosts} hosts: ${res.status} ${text}`);
  }
  const created = Date.parse(run.created_at);
  const started = Date.parse(run.started_at!);
  const finished = Date.parse(run.finished_at!);
  return {
    totalMs,
    acceptMs: created - sentAt,
    queueMs: started - created,
    runMs: finished - started,
    replyMs: receivedAt - finished,
  };
}

interface BareSample {
  ms: number;
  /** What closing this run's SSH masters costs (AnsibleRunner does it before answering). */
  cleanupMs: number;
}

/** ansible-playbook alone; connections fresh unless a persistent control dir is given. */
async function bareRun(
  lab: Lab,
  s: Settings,
  variant: Exclude<Variant, 'api'>,
  scratch: string,
  warmDirs: { cp: string; tmp: string },
): Promise<BareSample> {
  const dir = await mkdtemp(path.join(scratch, `${variant}-`));
  try {
    const dirs =
      variant === 'warm' ? warmDirs : { cp: path.join(dir, 'cp'), tmp: path.join(dir, 'tmp') };
    await mkdir(dirs.cp, { recursive: true, mode: 0o700 });
    await mkdir(dirs.tmp, { recursive: true, mode: 0o700 });
    const extravars = path.join(dir, 'extravars.json');
    await writeFile(extravars, '{}', { mode: 0o600 });
    const env = variant === 'naive' ? naiveEnv(dirs) : equivalentEnv(dirs);
    const args = ['-i', lab.inventoryPath, '-e', `@${extravars}`, '--limit'];
    args.push(lab.hosts.map((h) => h.name).join(','), path.join(CATALOG_DIR, `${s.playbook}.yml`));
    const t0 = performance.now();
    const r = await execa(ANSIBLE_PLAYBOOK, args, {
      cwd: dir,
      env,
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
    });
    const elapsed = performance.now() - t0;
    const ok =
      variant === 'naive'
        ? r.exitCode === 0 && (r.stdout.match(/ ok=1 /g) ?? []).length === s.hosts
        : r.exitCode === 0 &&
          Object.keys(parseCallbackJson(String(r.stdout))?.stats ?? {}).length === s.hosts;
    if (!ok) {
      throw new Error(
        `bare ${variant} run failed (rc ${r.exitCode}): ${String(r.stderr).slice(-2000)}`,
      );
    }
    let cleanupMs = 0;
    if (variant !== 'warm') {
      const c0 = performance.now();
      await closeSshMasters(dirs.cp, dir);
      cleanupMs = performance.now() - c0;
    }
    return { ms: elapsed, cleanupMs };
  } finally {
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** Median cost of the runner's per-run workspace (copy of playbooks, library, inventory). */
async function workspaceCost(lab: Lab, reps: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const ws = await createWorkspace({
      playbookRoot: CATALOG_DIR,
      libraryDir: path.join(PLAYBOOKS_DIR, 'library'),
      inventoryPath: lab.inventoryPath,
      extravars: {},
      vaultPassword: undefined,
    });
    await removeWorkspace(ws);
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

/** Median cost of one scan of /proc for a run's leftovers (part of closeSshMasters). */
async function procScanCost(reps: number): Promise<{ ms: number; processes: number }> {
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await pidsMentioning(path.join(os.tmpdir(), 'routeplane-run-nonexistent'));
    samples.push(performance.now() - t0);
  }
  const { readdir } = await import('node:fs/promises');
  const processes = (await readdir('/proc')).filter((e) => /^\d+$/.test(e)).length;
  return { ms: median(samples), processes };
}

export async function runnerOverhead(): Promise<BenchResult> {
  const s = settings();
  log(
    `== ${NAME}: '${s.playbook}' on ${s.hosts} lab hosts, median of ${s.reps} runs each, ` +
      `${databaseLabel()} ==`,
  );
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    const t0 = performance.now();
    const lab = await benchLab(cleanup, s.hosts);
    log(`lab ${lab.id} up in ${ms(performance.now() - t0)}`);
    const server = await benchServer(cleanup, { INVENTORY: lab.inventoryPath });
    const scratch = await tempDir(cleanup, 'runs');
    const warmDirs = { cp: path.join(scratch, 'warm-cp'), tmp: path.join(scratch, 'warm-tmp') };
    cleanup.defer('warm ssh masters', () => closeSshMasters(warmDirs.cp, warmDirs.cp));

    const api: ApiSample[] = [];
    const bare: BareSample[] = [];
    const naive: BareSample[] = [];
    const warm: BareSample[] = [];
    const order: Variant[] = ['api', 'bare', 'naive', 'warm'];
    // One untimed round first (python and ansible caches, first connections), then rounds that
    // interleave the variants so that drift in the machine's load spreads over all of them.
    for (let round = 0; round <= s.reps; round++) {
      const timed = round > 0;
      // Rotate the order so no variant always follows the same one.
      const rotated = order.map((_, i) => order[(i + round) % order.length]!);
      for (const v of rotated) {
        if (v === 'api') {
          const sample = await apiRun(server.url, s);
          if (timed) api.push(sample);
        } else {
          const sample = await bareRun(lab, s, v, scratch, warmDirs);
          if (timed) ({ bare, naive, warm })[v].push(sample);
        }
      }
      if (timed) {
        log(
          `round ${round}/${s.reps}: api ${ms(api.at(-1)!.totalMs)}, bare ${ms(bare.at(-1)!.ms)}, ` +
            `naive ${ms(naive.at(-1)!.ms)}, warm ${ms(warm.at(-1)!.ms)}`,
        );
      }
    }

    const apiMs = median(api.map((x) => x.totalMs));
    const bareMs = median(bare.map((x) => x.ms));
    const naiveMs = median(naive.map((x) => x.ms));
    const warmMs = median(warm.map((x) => x.ms));
    const overhead = apiMs / bareMs;

    log('');
    log(
      table([
        ['variant', 'median', 'runs (ms)'],
        ['API POST /v1/runs?wait', ms(apiMs), api.map((x) => x.totalMs.toFixed(0)).join(' ')],
        ['bare ansible-playbook', ms(bareMs), bare.map((x) => x.ms.toFixed(0)).join(' ')],
        ['naive ansible-playbook', ms(naiveMs), naive.map((x) => x.ms.toFixed(0)).join(' ')],
        ['bare, warm SSH masters', ms(warmMs), warm.map((x) => x.ms.toFixed(0)).join(' ')],
      ]),
    );
    log('');
    const perRound = api.map((x, i) => ratio(x.totalMs / bare[i]!.ms));
    log(
      `overhead: API / bare = ${ratio(overhead)} (goal <= 1.10x), +${ms(apiMs - bareMs)}; ` +
        `per round ${perRound.join(' ')}`,
    );
    log(
      `naive:    API / naive ansible (default callback, no pipelining) = ${ratio(apiMs / naiveMs)}`,
    );
    log(`warm:     bare with fresh SSH / bare with warm masters = ${ratio(bareMs / warmMs)}`);

    // Where the API's time goes, from the run's own timestamps (ms resolution) and from
    // measuring the runner's extra steps on their own.
    const [wsMs, scan] = [await workspaceCost(lab, 10), await procScanCost(10)];
    const cleanupMs = median(bare.map((x) => x.cleanupMs));
    log('');
    log('API breakdown (medians):');
    log(
      table([
        ['phase', 'median', 'what'],
        ['accept', ms(median(api.map((x) => x.acceptMs))), 'HTTP, auth, validation, insert'],
        ['queue', ms(median(api.map((x) => x.queueMs))), 'run slot, mark running'],
        ['run', ms(median(api.map((x) => x.runMs))), 'workspace + ansible + cleanup + finish'],
        ['reply', ms(median(api.map((x) => x.replyMs))), 'post-run hooks, response'],
        ['  of which workspace', ms(wsMs), 'create + remove per-run temp dir (measured alone)'],
        [
          '  of which ssh cleanup',
          ms(cleanupMs),
          `ssh -O exit x${s.hosts} + /proc scan (measured after bare runs)`,
        ],
        ['  of which /proc scan', ms(scan.ms), `${scan.processes} processes`],
      ]),
    );
    return {
      name: NAME,
      rows: [
        {
          what: `API vs bare ansible (${s.playbook}, ${s.hosts} hosts, median of ${s.reps})`,
          subject: ms(apiMs),
          baseline: ms(bareMs),
          ratio: overhead,
          goal: '<= 1.10x',
          met: overhead <= 1.1,
        },
        {
          what: 'API vs naive ansible (stock callback, no pipelining)',
          subject: ms(apiMs),
          baseline: ms(naiveMs),
          ratio: apiMs / naiveMs,
        },
        {
          what: 'bare ansible, fresh SSH vs warm masters',
          subject: ms(bareMs),
          baseline: ms(warmMs),
          ratio: bareMs / warmMs,
        },
      ],
    };
  });
}

if (isMain(import.meta.url)) runAsScript(runnerOverhead);
