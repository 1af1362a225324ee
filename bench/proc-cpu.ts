import { readdir, readFile, readlink, stat } from 'node:fs/promises';

// CPU time of processes from /proc, for the benchmarks that measure what a steady state costs
// (watch-cpu, failover-cost).

/** One process's CPU time so far and its command line. */
export interface ProcCpu {
  pid: number;
  ppid: number;
  /** utime + stime, seconds. */
  own: number;
  /** cutime + cstime: its children that ended and were waited for, seconds. */
  children: number;
  cmd: string;
}

export async function procCpu(pid: number | 'self'): Promise<ProcCpu | null> {
  try {
    const [stat, cmdline] = await Promise.all([
      readFile(`/proc/${pid}/stat`, 'utf8'),
      readFile(`/proc/${pid}/cmdline`, 'utf8'),
    ]);
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const n = (i: number) => Number(f[i]);
    // proc(5) fields 4 (ppid) and 14-17, counted here from field 3 (state); USER_HZ is 100.
    return {
      pid: pid === 'self' ? process.pid : pid,
      ppid: n(1),
      own: (n(11) + n(12)) / 100,
      children: (n(13) + n(14)) / 100,
      cmd: cmdline.replace(/\0/g, ' ').trim(),
    };
  } catch {
    return null; // gone
  }
}

/** Every descendant of `root` (children of all its threads, recursively). */
export async function descendants(root: number): Promise<number[]> {
  const out: number[] = [];
  const walk = async (pid: number) => {
    const tids = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
    for (const tid of tids) {
      const kids = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
      for (const k of kids.split(' ').filter(Boolean).map(Number)) {
        out.push(k);
        await walk(k);
      }
    }
  };
  await walk(root);
  return out;
}

/**
 * The pids in each named network namespace, as `ip netns pids` finds them (a process's
 * /proc/<pid>/ns/net against the namespace's /run/netns file), in one pass over /proc and
 * without a process per namespace.
 */
export async function netnsPids(names: string[]): Promise<Map<string, number[]>> {
  const byInode = new Map<string, string>();
  for (const name of names) {
    const st = await stat(`/run/netns/${name}`);
    byInode.set(`net:[${st.ino}]`, name);
  }
  const out = new Map<string, number[]>(names.map((n) => [n, []]));
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const link = await readlink(`/proc/${entry}/ns/net`).catch(() => null);
    const name = link === null ? undefined : byInode.get(link);
    if (name) out.get(name)!.push(Number(entry));
  }
  return out;
}
