import type { HostOutcome, OutcomeStatus, TaskResult } from './types.ts';

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

/** Turns the callback's JSON into per-host outcomes and per-task results. */
export function extractResults(doc: CallbackOutput): ExtractedResults {
  const results: TaskResult[] = [];
  // Keyed by host and status: a host's summary explains its own status, so a failure that
  // ignore_errors let pass never becomes the message of a host that ended ok.
  const firstProblem = new Map<string, string | null>();
  for (const play of doc.plays ?? []) {
    for (const task of play.tasks ?? []) {
      for (const [host, r] of Object.entries(task.hosts ?? {})) {
        const status = taskStatus(r);
        const msg = messageOf(r);
        const key = `${status} ${host}`;
        if ((status === 'failed' || status === 'unreachable') && !firstProblem.has(key)) {
          firstProblem.set(key, msg);
        }
        results.push({
          host,
          task: task.task?.name ?? '',
          status,
          changed: Boolean(r.changed),
          msg: status === 'ok' || status === 'changed' ? null : msg,
          data: moduleData(r),
        });
      }
    }
  }
  const summary: Record<string, HostOutcome> = {};
  for (const [host, s] of Object.entries(doc.stats ?? {})) {
    const status = hostStatus(s);
    summary[host] = {
      status,
      ok: s.ok ?? 0,
      changed: s.changed ?? 0,
      failures: s.failures ?? 0,
      unreachable: s.unreachable ?? 0,
      skipped: s.skipped ?? 0,
      msg: firstProblem.get(`${status} ${host}`) ?? null,
    };
  }
  return { summary, results };
}
