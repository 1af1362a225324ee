import type { Run, TaskResult } from '../runs/types.ts';

/** One host of an apply run, as each kind settles it. */
export interface HostInRun {
  host: string;
  /** What the kind rendered for this host before the run (what the run carried). */
  rendered: RenderedHost | undefined;
  /** Nothing new was owed: a periodic convergence of a host believed in sync. */
  converging: boolean;
  /** When the host is retried if it failed (the same time its work row records). */
  retryAt: Date;
}

/** What one kind renders for one host: its module's arguments, and what the run settles. */
export interface RenderedHost {
  /** The module's arguments for this host (the value of `routeplane_<kind>` in its file). */
  args: Record<string, unknown>;
  /**
   * The kind's own note of what the run will settle, read in the same snapshot as `args`:
   * objects written while the run goes are not in it, so they are never settled by a run
   * that did not carry them.
   */
  settles?: unknown;
}

/**
 * A kind of desired state (routes; firewall rules next) on the shared core. The core claims
 * hosts, writes each host's desired file, runs one apply run per claim (every kind's task, in
 * `kinds` order), and hands each kind the run to settle. A kind brings its store, its
 * rendering and its result mapping; lifecycle, schedules, generations, retries, locks and
 * convergence are the core's.
 */
export interface DesiredKind {
  /** Its key in a host's desired file (`routeplane_<name>`) and in logs. */
  readonly name: string;
  /** The Ansible module whose task results belong to this kind. */
  readonly module: string;
  /** Each host's desired objects, read after the claim (so every committed write is in it). */
  render(hosts: string[]): Promise<Map<string, RenderedHost>>;
  /**
   * Records what the run did to each host's objects (sync states, drift events) and returns,
   * per host, why it must be retried, or null when this kind converged there.
   */
  settle(run: Run, hosts: HostInRun[], repairDrift: boolean): Promise<Map<string, string | null>>;
  /** The arguments that leave a host with none of this kind's objects (removal on shutdown). */
  nothing(): RenderedHost;
  /** Hosts holding objects of this kind (removal on shutdown). */
  hostsWithObjects(): Promise<string[]>;
}

/**
 * A kind's module result for one host in a run, matched by module, never by task name. A kind
 * may run its module more than once on a host (the firewall applies, then confirms over a new
 * SSH connection, then, when that failed, says so): the last result that ran decides; a skipped
 * one only when none ran.
 */
export function moduleResult(run: Run, host: string, module: string): TaskResult | undefined {
  const mine = run.results.filter((r) => r.host === host && r.module === module);
  for (let i = mine.length - 1; i >= 0; i--) {
    if (mine[i]!.status !== 'skipped') return mine[i];
  }
  return mine[0];
}
