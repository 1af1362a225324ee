import type { Readable } from 'node:stream';
import type { RunWorkspace } from './run-workspace.ts';

/** How a launched ansible-playbook ended. */
export interface PlaybookExit {
  exitCode: number | null;
  signal: string | null;
  /** Set when it never ran: why (e.g. ENOENT, or the warm process could not fork it). */
  notStarted?: string;
  /** Set when the process that ran it went away mid-run (the warm process died). */
  lost?: string;
}

/** One ansible-playbook process (spawned, or forked by the warm runner). */
export interface LaunchedPlaybook {
  /** Its process group (it leads one); undefined when it never started. */
  pgid: number | undefined;
  stdout: Readable | null;
  stderr: Readable | null;
  /** Resolves when the group leader has exited; never rejects. */
  exited: Promise<PlaybookExit>;
}

/**
 * Starts `ansible-playbook ARGS` for a run, in its workspace: the one place the two runner
 * modes differ. Everything else about a run (workspace, arguments, reading results, timeout,
 * cancel, clean-up) is AnsibleRunner's, so both modes behave the same.
 */
export interface PlaybookLauncher {
  readonly mode: 'spawn' | 'warm';
  launch(args: string[], ws: RunWorkspace): Promise<LaunchedPlaybook>;
  /** Stops whatever the launcher keeps running between runs. */
  close(): Promise<void>;
}
