import type { HostOutcome, OutcomeStatus, RunProgress, TaskResult } from './types.ts';

interface CallbackStats {
  ok?: number;
  changed?: number;
  failures?: number;
  unreachable?: number;
  skipped?: number;
}

interface CallbackOutput {
  plays?: {
    tasks?: { task?: { name?: string }; hosts?: Record<string, Record<string, unknown>> }[];
  }[];
  stats?: Record<string, CallbackStats>;
}

export interface ExtractedResults {
  summary: Record<string, HostOutcome>;
  results: TaskResult[];
}

/** The JSON document ansible.posix.json prints: anything before its opening brace is noise. */
export function parseCallbackJson(stdout: string): CallbackOutput | null {
  const start = stdout.indexOf('{');
  if (start < 0) return null;
  try {
    const doc = JSON.parse(stdout.slice(start)) as unknown;
    return doc && typeof doc === 'object' && ('stats' in doc || 'plays' in doc)
      ? (doc as CallbackOutput)
      : null;
  } catch {
    return null;
  }
}

function taskStatus(r: Record<string, unknown>): OutcomeStatus {
  if (r.unreachable) return 'unreachable';
  if (r.failed) return 'failed';
  if (r.skipped) return 'skipped';
  if (r.changed) return 'changed';
  return 'ok';
}

function messageOf(r: Record<string, unknown>): string | null {
  const msg = r.msg ?? r.stderr ?? r.reason;
  if (typeof msg === 'string' && msg.trim()) return msg.trim();
  return msg === undefined || msg === null || msg === '' ? null : JSON.stringify(msg);
}

/** The module's own return values, without Ansible's bookkeeping or the module's arguments. */
function moduleData(r: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(r).filter(
      ([k]) => !k.startsWith('_ansible') && k !== 'invocation' && k !== 'action',
    ),
  );
}

function hostStatus(s: CallbackStats): OutcomeStatus {
  if (s.unreachable) return 'unreachable';
  if (s.failures) return 'failed';
  if (s.changed) return 'changed';
  if (s.ok) return 'ok';
  return 'skipped';
}

/**
 * Builds per-host outcomes and per-task results one task result at a time, so the runner can
 * feed it events as ansible prints them and never hold the whole output.
 */
export class ResultsCollector {
  private readonly results: TaskResult[] = [];
  // Keyed by host and status: a host's summary explains its own status, so a failure that
  // ignore_errors let pass never becomes the message of a host that ended ok.
  private readonly firstProblem = new Map<string, string | null>();
  private stats: Record<string, CallbackStats> | null = null;

  taskResult(taskName: string, host: string, r: Record<string, unknown>): void {
    const status = taskStatus(r);
    const msg = messageOf(r);
    const key = `${status} ${host}`;
    if ((status === 'failed' || status === 'unreachable') && !this.firstProblem.has(key)) {
      this.firstProblem.set(key, msg);
    }
    this.results.push({
      host,
      task: taskName,
      module: typeof r.action === 'string' ? r.action : null,
      status,
      changed: Boolean(r.changed),
      msg: status === 'ok' || status === 'changed' ? null : msg,
      data: moduleData(r),
    });
  }

  /** The recap ansible prints last: a run that reached it ran to its end. */
  recap(stats: Record<string, CallbackStats>): void {
    this.stats = stats;
  }

  get sawRecap(): boolean {
    return this.stats !== null;
  }

  get resultCount(): number {
    return this.results.length;
  }

  /** Summary from the recap (empty when the run never reached it) and the task results. */
  extracted(): ExtractedResults {
    const summary: Record<string, HostOutcome> = {};
    for (const [host, s] of Object.entries(this.stats ?? {})) {
      const status = hostStatus(s);
      summary[host] = {
        status,
        ok: s.ok ?? 0,
        changed: s.changed ?? 0,
        failures: s.failures ?? 0,
        unreachable: s.unreachable ?? 0,
        skipped: s.skipped ?? 0,
        msg: this.firstProblem.get(`${status} ${host}`) ?? null,
      };
    }
    return { summary, results: this.results };
  }
}

/** Turns the callback's JSON into per-host outcomes and per-task results. */
export function extractResults(doc: CallbackOutput): ExtractedResults {
  const collector = new ResultsCollector();
  for (const play of doc.plays ?? []) {
    for (const task of play.tasks ?? []) {
      for (const [host, r] of Object.entries(task.hosts ?? {})) {
        collector.taskResult(task.task?.name ?? '', host, r);
      }
    }
  }
  collector.recap(doc.stats ?? {});
  return collector.extracted();
}

// The ansible.posix.jsonl events that carry one host's result of one task.
const RESULT_EVENTS = new Set([
  'v2_runner_on_ok',
  'v2_runner_on_failed',
  'v2_runner_on_unreachable',
  'v2_runner_on_skipped',
]);

interface JsonlEvent {
  _event: string;
  task?: { name?: string };
  hosts?: Record<string, Record<string, unknown>>;
  stats?: Record<string, CallbackStats>;
}

/** One line of ansible.posix.jsonl output, or null when the line is not one of its events. */
export function parseJsonlEvent(line: string): JsonlEvent | null {
  const text = line.trim();
  if (!text.startsWith('{')) return null;
  try {
    const ev = JSON.parse(text) as unknown;
    return ev && typeof ev === 'object' && typeof (ev as JsonlEvent)._event === 'string'
      ? (ev as JsonlEvent)
      : null;
  } catch {
    return null;
  }
}

/**
 * Feeds one ansible.posix.jsonl event to `collector`. Each result event carries one task and
 * one host (the callback prints a copy of the task with just that host); play and task starts
 * carry nothing the results need; `v2_playbook_on_stats` is the recap.
 */
export function collectJsonlEvent(collector: ResultsCollector, ev: JsonlEvent): void {
  if (RESULT_EVENTS.has(ev._event)) {
    for (const [host, r] of Object.entries(ev.hosts ?? {})) {
      if (r && typeof r === 'object') collector.taskResult(ev.task?.name ?? '', host, r);
    }
  } else if (ev._event === 'v2_playbook_on_stats') {
    collector.recap(ev.stats ?? {});
  }
}

/** What a jsonl event says of a run's progress (a task began, a host finished one), if any. */
export function progressOf(ev: JsonlEvent): RunProgress[] {
  const task = ev.task?.name ?? '';
  // Lockstep plays announce a task once; free-strategy plays (apply) as each host starts it.
  if (ev._event === 'v2_playbook_on_task_start' || ev._event === 'v2_runner_on_start') {
    return [{ kind: 'task_started', task }];
  }
  if (!RESULT_EVENTS.has(ev._event)) return [];
  return Object.entries(ev.hosts ?? {})
    .filter(([, r]) => r && typeof r === 'object')
    .map(([host, r]) => ({
      kind: 'host_result' as const,
      task,
      host,
      status: ev._event === 'v2_runner_on_unreachable' ? 'unreachable' : taskStatus(r),
      changed: r.changed === true,
      msg: messageOf(r)?.slice(0, 500) ?? null,
    }));
}

/** Per-host outcomes and per-task results of a whole jsonl output (tests, tools). */
export function extractJsonl(stdout: string): ExtractedResults & { complete: boolean } {
  const collector = new ResultsCollector();
  for (const line of stdout.split('\n')) {
    const ev = parseJsonlEvent(line);
    if (ev) collectJsonlEvent(collector, ev);
  }
  return { ...collector.extracted(), complete: collector.sawRecap };
}
