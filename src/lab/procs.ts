import { access, readFile } from 'node:fs/promises';
import { execa } from 'execa';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// kill(pid, 0) also succeeds for zombies, and killed daemons (reparented to pid 1) stay zombies
// until pid 1 gets round to reaping them: read the state from /proc instead.
export async function isAlive(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export async function nsPids(ns: string): Promise<number[]> {
  const result = await execa('ip', ['netns', 'pids', ns], { reject: false });
  if (result.exitCode !== 0) {
    const exists = await access(`/run/netns/${ns}`).then(
      () => true,
      () => false,
    );
    if (!exists) return [];
    throw new Error(`ip netns pids ${ns}: ${result.stderr}`);
  }
  return result.stdout.split(/\s+/).filter(Boolean).map(Number);
}

// SIGKILL everything in the namespace until nothing is left. Repeats because a process may fork
// between listing and killing (sshd accepting a connection), and sshd session processes do not
// die with the listener or with a killed client.
export async function killNamespaceProcs(ns: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = await nsPids(ns);
    if (pids.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`processes ${pids.join(' ')} in ${ns} survived SIGKILL for ${timeoutMs} ms`);
    }
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited between listing and kill
      }
    }
    await sleep(20);
  }
}
