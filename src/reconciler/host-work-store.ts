import type { Knex } from 'knex';
import { Batcher } from '../shared/batcher.ts';
import { knexSql, type Sql } from './sql.ts';

/** A write's place in the queue: for each host, the desired generation its change produced. */
export type Ticket = Map<string, number>;

/** One host as a claim hands it to a run. */
export interface ClaimedHost {
  host: string;
  /** The desired generation the run carries: everything committed up to the claim. */
  gen: number;
  /** The lock epoch of this claim; the host-side fence refuses any older one. */
  epoch: number;
  /** Failed attempts before this one (backoff grows with it). */
  attempts: number;
  /** Nothing new was owed: a periodic convergence of a host believed in sync. */
  converging: boolean;
}

/** Where one host stands, as waiters and the API read it. */
export interface WorkState {
  host: string;
  desiredGen: number;
  attemptedGen: number;
  appliedGen: number;
  attempts: number;
  dueAt: Date | null;
  lastError: string | null;
  lastRunId: string | null;
  /** The generation and run of the run holding the host now, if any. */
  runGen: number | null;
  runId: string | null;
}

/** How one host's run ended, as the reconciler decided it. */
export interface HostFinish {
  host: string;
  gen: number;
  epoch: number;
  runId: string | null;
  /** null when the host converged; else why not (it is retried at `retryAt`). */
  error: string | null;
  retryAt: Date | null;
}

const json = (v: unknown) => JSON.stringify(v);
/**
 * The next lock epoch of a host: later than the last one, and at least the current time in
 * milliseconds, so a run claimed through a fresh database (or another deployment) still ranks
 * above whatever an older history left in the host-side fence.
 */
const NEXT_EPOCH = `greatest(epoch + 1, (extract(epoch from clock_timestamp()) * 1000)::bigint)`;
const hostsIn = `(select jsonb_array_elements_text(?::jsonb))`;

interface WorkRow {
  host: string;
  desired_gen: number | string;
  attempted_gen: number | string;
  applied_gen: number | string;
  attempts: number;
  due_at: Date | string | null;
  last_error: string | null;
  last_run_id: string | null;
  run_gen: number | string | null;
  run_id: string | null;
  epoch: number | string;
}

const date = (d: Date | string | null) => (d === null ? null : new Date(d));

function stateOf(r: WorkRow): WorkState {
  return {
    host: r.host,
    desiredGen: Number(r.desired_gen),
    attemptedGen: Number(r.attempted_gen),
    appliedGen: Number(r.applied_gen),
    attempts: r.attempts,
    dueAt: date(r.due_at),
    lastError: r.last_error,
    lastRunId: r.last_run_id,
    runGen: r.run_gen === null ? null : Number(r.run_gen),
    runId: r.run_id,
  };
}

/**
 * The durable per-host work rows (ADR 008). Every statement here is one round trip; `bump`
 * runs inside the caller's transaction so the change and the work it owes commit together.
 */
export class HostWorkStore {
  private readonly committedListeners: (() => void)[] = [];
  private readonly writeEndedListeners: (() => void)[] = [];
  private readonly inFlight = new Set<Knex.Transaction>();
  private readonly stateReads = new Batcher((calls: string[][]) => this.readStates(calls));
  /** Writes announced before their transaction began (a request still being read). */
  private readonly expected = new Set<symbol>();

  constructor(private readonly knex: Knex) {}

  /**
   * Writes on their way: transactions that recorded host work and have not committed or
   * rolled back yet, and writes announced with expectWrite that have not ended.
   */
  writesInFlight(): number {
    return this.inFlight.size + this.expected.size;
  }

  /**
   * Announces a write before its transaction begins: a request whose body is still being
   * read and validated. Returns its end (idempotent), to call once it has committed or
   * given up.
   */
  expectWrite(): () => void {
    const id = Symbol('write');
    this.expected.add(id);
    return () => {
      if (this.expected.delete(id)) this.writeEndedListeners.forEach((fn) => fn());
    };
  }

  /** Called when an announced write ends. */
  onWriteEnded(fn: () => void): void {
    this.writeEndedListeners.push(fn);
  }

  /** Called after a transaction that bumped work commits, in the writer's async context. */

  onBumpCommitted(fn: () => void): void {
    this.committedListeners.push(fn);
  }

  /**
   * Records that these hosts' desired state changed: each gets the next generation and is due
   * now (a new change gets a fresh attempt at once, even during a backoff). Must run in the
   * transaction that made the change. Sorted, so two writes never lock rows in crossed order.
   */
  async bump(trx: Knex.Transaction, hosts: Iterable<string>): Promise<Ticket> {
    const list = [...new Set(hosts)].sort();
    if (list.length === 0) return new Map();
    const rows = await knexSql(trx)<{ host: string; desired_gen: number | string }>(
      `insert into host_work as w (host, desired_gen, due_at)
         select h, 1, now() from ${hostsIn} as t(h) order by h
       on conflict (host) do update
         set desired_gen = w.desired_gen + 1, due_at = now(), updated_at = now()
       returning host, desired_gen`,
      [json(list)],
    );
    // In flight until it commits or rolls back: a claim may wait for it (group commit).
    if (trx.executionPromise && !this.inFlight.has(trx)) {
      this.inFlight.add(trx);
      void trx.executionPromise.then(
        () => this.inFlight.delete(trx),
        () => this.inFlight.delete(trx),
      );
    }
    // After the commit, never before: a claim must be able to see the row.
    void trx.executionPromise?.then(
      () => this.committedListeners.forEach((fn) => fn()),
      () => undefined,
    );
    return new Map(rows.map((r) => [r.host, Number(r.desired_gen)]));
  }

  /**
   * Whether a claim could find anything: an unclaimed host due now, or (for the orphan check)
   * a host another instance holds. Asked on the pool, so an idle replica does not open a
   * dedicated connection every poll.
   */
  async claimWorth(
    owner: string,
    converge: boolean,
  ): Promise<{ due: boolean; heldByOthers: boolean }> {
    const [row] = await knexSql(this.knex)<{ due: boolean; held: boolean }>(
      `select exists (select 1 from host_work where claimed_by is null
                        and (due_at <= now() or (?::boolean and converge_at <= now()))) as due,
              exists (select 1 from host_work where claimed_by is not null and claimed_by <> ?) as held`,
      [converge, owner],
    );
    return { due: Boolean(row?.due), heldByOthers: Boolean(row?.held) };
  }

  /**
   * Due hosts nobody holds, oldest first, locked for the caller's claim transaction with SKIP
   * LOCKED so concurrent claimers never see the same row. Writes come before convergence.
   */
  async candidates(sql: Sql, max: number, converge: boolean): Promise<string[]> {
    const rows = await sql<{ host: string }>(
      `select host from host_work
        where claimed_by is null
          and (due_at <= now() or (?::boolean and converge_at <= now()))
        order by due_at asc nulls last, converge_at asc
        limit ?
        for update skip locked`,
      [converge, max],
    );
    return rows.map((r) => r.host);
  }

  /** Marks the hosts claimed by `owner` with a new epoch; returns what each run carries. */
  async markClaimed(sql: Sql, hosts: string[], owner: string): Promise<ClaimedHost[]> {
    if (hosts.length === 0) return [];
    const rows = await sql<WorkRow & { owes_nothing: boolean }>(
      `update host_work
          set claimed_by = ?, claimed_at = now(), epoch = ${NEXT_EPOCH}, run_gen = desired_gen,
              run_id = null, updated_at = now()
        where host in ${hostsIn}
        returning *, (desired_gen <= applied_gen) as owes_nothing`,
      [owner, json(hosts)],
    );
    return rows.map((r) => ({
      host: r.host,
      gen: Number(r.desired_gen),
      epoch: Number(r.epoch),
      attempts: r.attempts,
      // Only a host whose every generation was applied is converging: a write in backoff that
      // convergence happens to pick up is still a write, applied in full.
      converging: r.owes_nothing,
    }));
  }

  /** Hosts another instance claims, for the orphan check. */
  async claimedByOthers(sql: Sql, owner: string): Promise<{ host: string; owner: string }[]> {
    return sql<{ host: string; owner: string }>(
      `select host, claimed_by as owner from host_work
        where claimed_by is not null and claimed_by <> ?`,
      [owner],
    );
  }

  /**
   * Frees claims whose holder is gone: the host is owed a run again at once, so whatever the
   * dead run carried is applied by someone else.
   */
  async releaseOrphans(sql: Sql, orphans: { host: string; owner: string }[]): Promise<void> {
    for (const o of orphans) {
      await sql(
        `update host_work
            set claimed_by = null, claimed_at = null, run_gen = null, run_id = null,
                due_at = coalesce(least(due_at, now()), now()), updated_at = now()
          where host = ? and claimed_by = ?`,
        [o.host, o.owner],
      );
    }
  }

  /** Every claim is void (an embedded database has one process: its predecessor is dead). */
  async releaseAll(): Promise<void> {
    await this.knex.raw(
      `update host_work
          set claimed_by = null, claimed_at = null, run_gen = null, run_id = null,
              due_at = coalesce(least(due_at, now()), now()), updated_at = now()
        where claimed_by is not null`,
    );
  }

  /**
   * Of these claims, the hosts still held by `owner` with the same epoch: a claim another
   * instance took over (this one lost its lock) must not settle anything any more.
   */
  async stillClaimed(claims: ClaimedHost[], owner: string): Promise<Set<string>> {
    if (claims.length === 0) return new Set();
    const rows = await knexSql(this.knex)<{ host: string }>(
      `select w.host from host_work w
         join jsonb_to_recordset(?::jsonb) as c(host text, epoch bigint)
           on c.host = w.host and c.epoch = w.epoch
        where w.claimed_by = ?`,
      [json(claims.map((c) => ({ host: c.host, epoch: c.epoch }))), owner],
    );
    return new Set(rows.map((r) => r.host));
  }

  /** Names the run that carries the claimed hosts' generations. */
  async carriedBy(hosts: ClaimedHost[], owner: string, runId: string): Promise<void> {
    await knexSql(this.knex)(
      `update host_work set run_id = ?
        where host in ${hostsIn} and claimed_by = ?`,
      [runId, json(hosts.map((h) => h.host)), owner],
    );
  }

  /**
   * Ends claims: a host that converged owes nothing more unless a write came during its run;
   * one that failed is due again at its retry time. A claim another instance has since taken
   * over (this one lost its lock) is left alone. `convergeMs` is when to re-apply a converged
   * host as a safety net (0: never).
   */
  async finish(finishes: HostFinish[], owner: string, convergeMs: (host: string) => number) {
    if (finishes.length === 0) return;
    await this.knex.transaction(async (trx) => {
      const sql = knexSql(trx);
      for (const f of finishes) {
        const ok = f.error === null;
        const converge = convergeMs(f.host);
        await sql(
          `update host_work set
             claimed_by = null, claimed_at = null, run_gen = null, run_id = null,
             attempted_gen = greatest(attempted_gen, ?::bigint),
             applied_gen = case when ?::boolean then greatest(applied_gen, ?::bigint) else applied_gen end,
             attempts = case when ?::boolean then 0 else attempts + 1 end,
             last_error = ?, last_run_id = coalesce(?::uuid, last_run_id),
             applied_at = case when ?::boolean then now() else applied_at end,
             due_at = case when desired_gen > ?::bigint then now()
                           when ?::boolean then null
                           else ?::timestamptz end,
             converge_at = case when ?::int > 0 then now() + ?::int * interval '1 millisecond'
                                else null end,
             updated_at = now()
           where host = ? and claimed_by = ? and epoch = ?`,
          [
            f.gen,
            ok,
            f.gen,
            ok,
            f.error,
            f.runId,
            ok,
            f.gen,
            ok,
            f.retryAt?.toISOString() ?? null,
            converge,
            converge,
            f.host,
            owner,
            f.epoch,
          ],
        );
      }
    });
  }

  /**
   * New lock epochs for hosts locked outside a claim (removal on shutdown), so the host-side
   * fence takes that run as the newest.
   */
  async nextEpochs(hosts: string[]): Promise<Map<string, number>> {
    if (hosts.length === 0) return new Map();
    const rows = await knexSql(this.knex)<{ host: string; epoch: number | string }>(
      `insert into host_work as w (host, epoch) select h, ${NEXT_EPOCH.replace('epoch', '0')} from ${hostsIn} as t(h)
       on conflict (host) do update set epoch = ${NEXT_EPOCH.replace('epoch', 'w.epoch')}, updated_at = now()
       returning host, epoch`,
      [json(hosts)],
    );
    return new Map(rows.map((r) => [r.host, Number(r.epoch)]));
  }

  /**
   * Spreads the first convergence of hosts that have none over one interval, and pulls in any
   * that lie further out than one interval (the interval was shortened).
   */
  async scheduleConvergence(intervalMs: number): Promise<void> {
    await knexSql(this.knex)(
      `update host_work
          set converge_at = least(coalesce(converge_at, 'infinity'),
                                  now() + random() * ?::int * interval '1 millisecond')
        where converge_at is null or converge_at > now() + ?::int * interval '1 millisecond'`,
      [intervalMs, intervalMs],
    );
  }

  /** Where each of these hosts stands (hosts without a row owe nothing). */
  async states(hosts: string[]): Promise<Map<string, WorkState>> {
    if (hosts.length === 0) return new Map();
    const all = await this.stateReads.call(hosts);
    return new Map(hosts.filter((h) => all.has(h)).map((h) => [h, all.get(h)!]));
  }

  /** One read for the hosts of every call in a batch (a burst of writes each waiting). */
  private async readStates(calls: string[][]): Promise<Map<string, WorkState>[]> {
    const rows = await knexSql(this.knex)<WorkRow>(
      `select * from host_work where host in ${hostsIn}`,
      [json([...new Set(calls.flat())])],
    );
    const all = new Map(rows.map((r) => [r.host, stateOf(r)]));
    return calls.map(() => all);
  }

  /** When the next unclaimed host falls due, or null when none will. */
  async nextDueAt(converge: boolean): Promise<Date | null> {
    const [row] = await knexSql(this.knex)<{ at: Date | string | null }>(
      `select least(min(due_at), case when ?::boolean then min(converge_at) end) as at
         from host_work where claimed_by is null`,
      [converge],
    );
    return date(row?.at ?? null);
  }

  /**
   * Makes hosts due now without a new generation: their kernels no longer hold what the rows
   * say was applied (routeplane removed its objects on shutdown), so the next start re-applies.
   */
  async markDue(hosts: string[]): Promise<void> {
    if (hosts.length === 0) return;
    await knexSql(this.knex)(
      `update host_work set due_at = now(), updated_at = now() where host in ${hostsIn}`,
      [json(hosts)],
    );
  }
}
