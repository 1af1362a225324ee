import type { Schemas } from '../http/api.ts';
import type { Run } from './types.ts';
import type { CatalogListing } from './playbook-catalog.ts';

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

export function presentPlaybook(p: CatalogListing): Schemas['Playbook'] {
  return {
    name: p.name,
    vars: p.vars.map((v) => ({
      name: v.name,
      type: v.type,
      required: v.required,
      ...('default' in v ? { default: v.default } : {}),
      ...(v.description !== undefined ? { description: v.description } : {}),
    })),
    error: p.error,
  };
}
