import type { Knex } from 'knex';
import type { HostOutcome, Run, RunKind, RunOutcome, RunStatus, TaskResult } from './types.ts';

interface RunRow {
  id: string;
  kind: RunKind;
  playbook: string;
  hosts: string[];
  limit_spec: string[];
  status: RunStatus;
  requested_by: string;
  rc: number | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  summary: Record<string, HostOutcome>;
  results: TaskResult[];
  error: string | null;
  log: string;
  owner: string;
}

function fromRow(r: RunRow): Run {
  return {
    id: r.id,
    kind: r.kind,
    playbook: r.playbook,
    hosts: r.hosts,
    limit: r.limit_spec,
    status: r.status,
    requestedBy: r.requested_by,
    rc: r.rc,
    createdAt: new Date(r.created_at),
    startedAt: r.started_at ? new Date(r.started_at) : null,
    finishedAt: r.finished_at ? new Date(r.finished_at) : null,
    summary: r.summary,
    results: r.results,
    error: r.error,
    log: r.log,
    owner: r.owner,
  };
}

export interface NewRun {
  id: string;
  kind: RunKind;
  playbook: string;
  hosts: string[];
  limit: string[];
  requestedBy: string;
  owner: string;
}

export interface RunFilter {
  status?: RunStatus;
  kind?: RunKind;
  host?: string;
  playbook?: string;
  limit: number;
  offset: number;
}

const LIST_COLUMNS = [
  'id',
  'kind',
  'playbook',
  'hosts',
  'limit_spec',
  'status',
  'requested_by',
  'rc',
  'created_at',
  'started_at',
  'finished_at',
  'summary',
  'error',
  'owner',
];

export class RunsStore {
  constructor(private readonly knex: Knex) {}

  async insert(run: NewRun): Promise<Run> {
    const [row] = await this.knex<RunRow>('runs')
      .insert({
        id: run.id,
        kind: run.kind,
        playbook: run.playbook,
        hosts: JSON.stringify(run.hosts) as never,
        limit_spec: JSON.stringify(run.limit) as never,
        status: 'queued',
        requested_by: run.requestedBy,
        owner: run.owner,
      })
      .returning('*');
    return fromRow(row as RunRow);
  }

  async get(id: string): Promise<Run | null> {
    const row = await this.knex<RunRow>('runs').where({ id }).first();
    return row ? fromRow(row) : null;
  }

  async markRunning(id: string): Promise<void> {
    await this.knex('runs')
      .where({ id, status: 'queued' })
      .update({ status: 'running', started_at: this.knex.fn.now() });
  }

  /** The process group the run's ansible-playbook leads, once it runs. */
  async recordProcess(id: string, pgid: number): Promise<void> {
    await this.knex('runs').where({ id }).update({ pgid });
  }

  /**
   * Process groups recorded for runs of `owners` that never ended on their own (still queued
   * or running, or interrupted at start-up): a run that ended had its group killed then.
   */
  async processesOf(owners: string[]): Promise<{ id: string; owner: string; pgid: number }[]> {
    if (owners.length === 0) return [];
    return this.knex('runs')
      .select('id', 'owner', 'pgid')
      .whereIn('owner', owners)
      .whereIn('status', ['queued', 'running', 'interrupted'])
      .whereNotNull('pgid');
  }

  /**
   * Deletes runs that ended before `before` (RUN_RETENTION_DAYS). Runs still queued or running
   * are never pruned, whatever their age. Nothing references a run by foreign key: routes'
   * `last_run_id` and snapshots' `run_id` keep the id of a run that is gone (a 404 to follow).
   */
  async pruneFinishedBefore(before: Date, batch = 1000): Promise<number> {
    let total = 0;
    // In batches: a first prune of a long history must not hold one huge delete.
    for (;;) {
      const ids = this.knex('runs')
        .select('id')
        .whereNotIn('status', ['queued', 'running'])
        .whereNotNull('finished_at')
        .where('finished_at', '<', before)
        .limit(batch);
      // The ids, not delete()'s count: knex-pglite answers a result object there.
      const gone = await this.knex('runs').whereIn('id', ids).delete().returning('id');
      total += gone.length;
      if (gone.length < batch) return total;
    }
  }

  async finish(id: string, outcome: RunOutcome): Promise<Run | null> {
    const [row] = await this.knex<RunRow>('runs')
      .where({ id })
      .whereIn('status', ['queued', 'running'])
      .update({
        status: outcome.status,
        rc: outcome.rc,
        summary: JSON.stringify(outcome.summary) as never,
        results: JSON.stringify(outcome.results) as never,
        error: outcome.error,
        log: outcome.log,
        finished_at: this.knex.fn.now() as never,
      })
      .returning('*');
    return row ? fromRow(row as RunRow) : null;
  }

  async list(f: RunFilter): Promise<{ items: Run[]; total: number }> {
    const q = this.knex<RunRow>('runs');
    if (f.status) q.where('status', f.status);
    if (f.kind) q.where('kind', f.kind);
    if (f.playbook) q.where('playbook', f.playbook);
    if (f.host) q.whereRaw('hosts @> ?::jsonb', [JSON.stringify([f.host])]);
    const [{ n }] = (await q.clone().count({ n: '*' })) as [{ n: number | string }];
    const rows = await q
      .select(LIST_COLUMNS)
      .orderBy([
        { column: 'created_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .limit(f.limit)
      .offset(f.offset);
    return {
      items: (rows as unknown as RunRow[]).map((r) => fromRow({ ...r, results: [], log: '' })),
      total: Number(n),
    };
  }

  /** Owners of runs still marked queued or running, other than `self`. */
  async ownersOfUnfinished(self: string): Promise<string[]> {
    const rows = await this.knex('runs')
      .distinct('owner')
      .whereIn('status', ['queued', 'running'])
      .whereNot('owner', self);
    return rows.map((r: { owner: string }) => r.owner);
  }

  /** Runs a dead process left unfinished: they never report, so they end as interrupted. */
  async markInterrupted(owners: string[]): Promise<Run[]> {
    if (owners.length === 0) return [];
    const rows = await this.knex<RunRow>('runs')
      .whereIn('owner', owners)
      .whereIn('status', ['queued', 'running'])
      .update({
        status: 'interrupted',
        finished_at: this.knex.fn.now() as never,
        error: 'the routeplane process running it stopped before it ended',
      })
      .returning('*');
    return rows.map((r) => fromRow(r as RunRow));
  }
}
