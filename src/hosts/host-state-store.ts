import type { Knex } from 'knex';
import type { HostState } from './host-state.ts';

interface SnapshotRow {
  host: string;
  state: Omit<HostState, 'collectedAt'> | null;
  collected_at: Date | null;
  run_id: string | null;
  reachable: boolean | null;
  last_seen_at: Date | null;
  last_error: string | null;
}

export interface HostRecord {
  host: string;
  state: HostState | null;
  reachable: boolean | null;
  lastSeenAt: Date | null;
  lastError: string | null;
}

function fromRow(r: SnapshotRow): HostRecord {
  return {
    host: r.host,
    state:
      r.state && r.collected_at
        ? { ...r.state, runId: r.run_id, collectedAt: new Date(r.collected_at) }
        : null,
    reachable: r.reachable,
    lastSeenAt: r.last_seen_at ? new Date(r.last_seen_at) : null,
    lastError: r.last_error,
  };
}

/**
 * How long a read snapshot is served from memory. Writes from this process invalidate at once;
 * a gather by another replica shows up within this bound. Reading host state is the hot path
 * of dashboards, and the database read was most of its cost.
 */
const CACHE_TTL_MS = 1000;

/** The last gathered state and reachability of each host. */
export class HostStateStore {
  private readonly cache = new Map<string, { record: HostRecord | null; at: number }>();

  constructor(private readonly knex: Knex) {}

  async get(host: string): Promise<HostRecord | null> {
    const hit = this.cache.get(host);
    if (hit && Date.now() - hit.at < CACHE_TTL_MS) return hit.record;
    const row = await this.knex<SnapshotRow>('host_snapshots').where({ host }).first();
    const record = row ? fromRow(row) : null;
    this.cache.set(host, { record, at: Date.now() });
    return record;
  }

  async all(): Promise<Map<string, HostRecord>> {
    const rows = await this.knex<SnapshotRow>('host_snapshots').select(
      'host',
      'reachable',
      'last_seen_at',
      'last_error',
    );
    return new Map(
      rows.map((r) => [r.host, fromRow({ ...r, state: null, collected_at: null, run_id: null })]),
    );
  }

  async saveState(host: string, state: HostState): Promise<void> {
    this.cache.delete(host);
    const { collectedAt, runId, ...body } = state;
    await this.knex('host_snapshots')
      .insert({
        host,
        state: JSON.stringify(body),
        collected_at: collectedAt,
        run_id: runId,
        reachable: true,
        last_seen_at: collectedAt,
        last_error: null,
      })
      .onConflict('host')
      .merge(['state', 'collected_at', 'run_id', 'reachable', 'last_seen_at', 'last_error']);
  }

  /** A re-read that found the state unchanged: only when it was read moves. */
  async touch(host: string, at: Date): Promise<void> {
    this.cache.delete(host);
    await this.knex('host_snapshots')
      .where({ host })
      .update({ collected_at: at, reachable: true, last_seen_at: at, last_error: null });
  }

  async recordReachability(
    host: string,
    reachable: boolean,
    error: string | null,
    at: Date,
  ): Promise<void> {
    this.cache.delete(host);
    const row = {
      host,
      reachable,
      last_error: error,
      updated_at: at,
      ...(reachable ? { last_seen_at: at } : {}),
    };
    await this.knex('host_snapshots')
      .insert(row)
      .onConflict('host')
      .merge(Object.keys(row).filter((k) => k !== 'host'));
  }
}
