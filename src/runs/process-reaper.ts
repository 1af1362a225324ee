import { readdir, readFile } from 'node:fs/promises';
import { execa } from 'execa';

/** Pids of live processes whose command line mentions `needle` (e.g. a run's temp dir). */
export async function pidsMentioning(needle: string): Promise<number[]> {
  const entries = (await readdir('/proc')).filter(
    (e) => /^\d+$/.test(e) && Number(e) !== process.pid,
  );
  // Read in parallel: the scan sits on every run's path to "finished".
  const found = await Promise.all(
    entries.map(async (entry) => {
      try {
        const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8');
        if (!cmdline.includes(needle)) return null;
        const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
        // Zombies have already exited; only their parent can reap them.
        if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return null;
        return Number(entry);
      } catch {
        return null; // gone while we looked
      }
    }),
  );
  return found.filter((p): p is number => p !== null);
}

export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is already empty
  }
}

/** Asks the SSH master on `socket` to exit; a socket with no master behind it is a no-op. */
export async function exitSshMaster(socket: string): Promise<void> {
  await execa('ssh', ['-O', 'exit', '-o', `ControlPath=${socket}`, 'routeplane-cp'], {
    reject: false,
    timeout: 5000,
    stdin: 'ignore',
  });
}

/**
 * Ends SSH ControlPersist masters a run left behind: ask each politely over its socket
 * (`ssh -O exit`), then kill whatever still names the run's directory. Masters detach from
 * the run's process group, so killing the group alone would leave them.
 */
export async function closeSshMasters(controlPathDir: string, workspaceDir: string): Promise<void> {
  let sockets: string[] = [];
  try {
    sockets = await readdir(controlPathDir);
  } catch {
    sockets = [];
  }
  await Promise.all(sockets.map((s) => exitSshMaster(`${controlPathDir}/${s}`)));
  for (const pid of await pidsMentioning(workspaceDir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function groupSignalable(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether any process of group `pgid` is still running (zombies have already stopped). */
async function groupRunning(pgid: number): Promise<boolean> {
  if (!groupSignalable(pgid)) return false;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z') return true;
    } catch {
      // gone while we looked
    }
  }
  return false;
}

/**
 * Kills process group `pgid` and waits (at most `maxMs`) until none of it runs, so a run is
 * reported ended only once nothing of it can still touch a host. False if some remained.
 */
export async function killGroupAndWait(pgid: number, maxMs = 5000): Promise<boolean> {
  const until = Date.now() + maxMs;
  for (;;) {
    signalGroup(pgid, 'SIGKILL');
    if (!(await groupRunning(pgid))) return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
}
