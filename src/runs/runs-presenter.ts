import type { Schemas } from '../http/api.ts';
import type { Run } from './types.ts';

export function presentRun(run: Run, detail: boolean): Schemas['Run'] {
  return {
    id: run.id,
    kind: run.kind,
    playbook: run.playbook,
    hosts: run.hosts,
    limit: run.limit,
    status: run.status,
    requested_by: run.requestedBy,
    rc: run.rc,
    created_at: run.createdAt.toISOString(),
    started_at: run.startedAt?.toISOString() ?? null,
    finished_at: run.finishedAt?.toISOString() ?? null,
    summary: run.summary,
    error: run.error,
    ...(detail ? { results: run.results, log: run.log } : {}),
  };
}
