export const RUN_STATUSES = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'error',
  'canceled',
  'timed_out',
  'interrupted',
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const FINAL_STATUSES: readonly RunStatus[] = [
  'succeeded',
  'failed',
  'error',
  'canceled',
  'timed_out',
  'interrupted',
];

export type RunKind = 'playbook' | 'gather' | 'apply';

export type OutcomeStatus = 'ok' | 'changed' | 'failed' | 'unreachable' | 'skipped';

export interface HostOutcome {
  status: OutcomeStatus;
  ok: number;
  changed: number;
  failures: number;
  unreachable: number;
  skipped: number;
  msg: string | null;
}

export interface TaskResult {
  host: string;
  task: string;
  /** The module (Ansible's `action`) that produced the result: consumers match on this. */
  module: string | null;
  status: OutcomeStatus;
  changed: boolean;
  msg: string | null;
  data: Record<string, unknown>;
}

export interface Run {
  id: string;
  kind: RunKind;
  playbook: string;
  hosts: string[];
  limit: string[];
  status: RunStatus;
  requestedBy: string;
  rc: number | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  summary: Record<string, HostOutcome>;
  results: TaskResult[];
  error: string | null;
  log: string;
  owner: string;
}

/** What the runner needs to execute one ansible-playbook invocation. */
export interface RunSpec {
  runId: string;
  /** Directory copied into the run's temp dir; the playbook path is relative to it. */
  playbookRoot: string;
  playbookFile: string;
  hosts: string[];
  extravars: Record<string, unknown>;
  /**
   * Per-host variables: each host's go to `desired/<host>.json` beside the playbook (loaded by
   * a play-level `vars_files`), so a host's objects reach that host only.
   */
  hostVars?: Record<string, Record<string, unknown>>;
  /** Where the run's temp dir goes: its instance's workspace directory. */
  workspaceParent?: string;
  /**
   * Told the process group id once ansible-playbook runs, so it can be recorded (a later
   * start-up stops a group its dead owner left). Must not throw; not awaited.
   */
  onSpawned?(pgid: number): void;
  /** Told each task start and each host's result as the jsonl callback prints them. */
  onProgress?(progress: RunProgress): void;
}

/** A step of a run as it happens (streamed to the run's WebSocket topic). */
export type RunProgress =
  | { kind: 'task_started'; task: string }
  | {
      kind: 'host_result';
      task: string;
      host: string;
      status: OutcomeStatus;
      changed: boolean;
      msg: string | null;
    };

export interface RunOutcome {
  status: Extract<RunStatus, 'succeeded' | 'failed' | 'error' | 'canceled' | 'timed_out'>;
  rc: number | null;
  summary: Record<string, HostOutcome>;
  results: TaskResult[];
  error: string | null;
  log: string;
}

export interface RunHandle {
  readonly done: Promise<RunOutcome>;
  cancel(): void;
}

/** Executes playbooks. The real one spawns ansible-playbook; unit tests substitute their own. */
export interface PlaybookRunner {
  start(spec: RunSpec): RunHandle;
  version(): Promise<string>;
  /** Starts what runs keep warm between them, in the background. */
  prepare?(): void;
  /** Lets go of what it keeps for hosts not in `hosts` (their SSH masters). */
  retainHosts?(hosts: Iterable<string>): Promise<void>;
  /** Where it keeps SSH masters between runs (a host's watcher rides one); null if it does not. */
  mastersDir?(): Promise<string | null>;
  /** At shutdown, after the last run: ends what it kept running between runs. */
  close?(): Promise<void>;
}
