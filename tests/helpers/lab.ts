import { access, readdir, readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, expect } from 'vitest';
import { LabExistsError, labDown, labUp, sshClientArgs, type Lab } from '../../src/lab/index.ts';

const HOOK_TIMEOUT_MS = 60_000;

// Kept on globalThis so that a test module evaluated twice in one worker process still never
// reuses an id.
const state = globalThis as { __routeplaneLabCounter?: number };

/**
 * Lab ids must be unique across parallel workers and files: pid (mod 36^4) and a per-process
 * counter (mod 36^2), base36, at most 6 characters.
 */
export function nextLabId(): string {
  const counter = (state.__routeplaneLabCounter = (state.__routeplaneLabCounter ?? 0) + 1);
  const n = (process.pid % 36 ** 4) * 36 ** 2 + (counter % 36 ** 2);
  return n.toString(36).padStart(3, '0');
}

/** Create a lab with a fresh id; ids left over by a crashed earlier run are skipped. */
export async function createTestLab(count: number): Promise<Lab> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await labUp({ id: nextLabId(), count });
    } catch (err) {
      if (!(err instanceof LabExistsError) || attempt >= 5) throw err;
    }
  }
}

/** Take the lab down and check that nothing of it is left. */
export async function destroyTestLab(lab: Lab): Promise<void> {
  await labDown({ id: lab.id });
  expect(await labNamespaces(lab.id)).toEqual([]);
  const dirGone = await access(lab.dir).then(
    () => false,
    () => true,
  );
  expect(dirGone, `${lab.dir} should be removed`).toBe(true);
}

/**
 * A lab of `count` hosts for the current test file (or describe block): created in beforeAll,
 * destroyed and checked in afterAll. Uses the default lab root (env LAB_ROOT), so that
 * `lab down --stale` from anywhere sees it as alive while this worker runs.
 */
export function useLab(count: number): { get lab(): Lab } {
  let current: Lab | undefined;
  beforeAll(async () => {
    current = await createTestLab(count);
  }, HOOK_TIMEOUT_MS);
  afterAll(async () => {
    if (current) await destroyTestLab(current);
    current = undefined;
  }, HOOK_TIMEOUT_MS);
  return {
    get lab(): Lab {
      if (!current) {
        throw new Error(`no lab: useLab(${count}) is up between its beforeAll and afterAll only`);
      }
      return current;
    },
  };
}

// Probes for tests, independent of the lab module's own bookkeeping.

/** Run a command on a lab host over ssh; extraOptions come first, so they win over the lab's. */
export function sshTo(lab: Lab, ip: string, command: string[], extraOptions: string[] = []) {
  const args = [...extraOptions, ...sshClientArgs(lab), `root@${ip}`, ...command];
  return execa('ssh', args, { reject: false });
}

export async function labNamespaces(id: string): Promise<string[]> {
  const all = await readdir('/run/netns').catch(() => [] as string[]);
  return all.filter((ns) => ns.startsWith(`rp-${id}-`));
}

export async function labLinks(id: string): Promise<string[]> {
  const { stdout } = await execa('ip', ['-j', 'link', 'show']);
  const names = (JSON.parse(stdout) as { ifname: string }[]).map((l) => l.ifname);
  return names.filter((n) => n === `rpb-${id}` || n.startsWith(`rp${id}-`));
}

export async function nsPids(ns: string): Promise<number[]> {
  const { stdout } = await execa('ip', ['netns', 'pids', ns]);
  return stdout.split(/\s+/).filter(Boolean).map(Number);
}

const cmdline = async (pid: number | string) =>
  (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ').trim();

/** Command lines of the processes in a namespace. */
export async function nsCommands(ns: string): Promise<string[]> {
  return Promise.all((await nsPids(ns)).map(cmdline));
}

/** "pid: cmdline" of every process whose command line contains text (zombies have none). */
export async function processesMentioning(text: string): Promise<string[]> {
  const pids = (await readdir('/proc')).filter((p) => /^\d+$/.test(p));
  const lines = await Promise.all(pids.map(async (pid) => `${pid}: ${await cmdline(pid)}`));
  return lines.filter((line) => line.slice(line.indexOf(':') + 1).includes(text));
}
