import { randomUUID } from 'node:crypto';
import type { Actor } from '../auth/roles.ts';
import type { Config } from '../config.ts';
import {
  ConflictError,
  NotFoundError,
  ServiceUnavailableError,
  ValidationError,
} from '../http/errors.ts';
import type { InventorySource } from '../hosts/inventory-source.ts';
import { resolveTargets } from '../hosts/inventory.ts';
import type { Logger } from '../logger.ts';
import { FinishRecorder } from './finish-recorder.ts';
import type { InstancePresence } from './instance-presence.ts';
import type { CatalogListing, PlaybookCatalog } from './playbook-catalog.ts';
import { checkExtravars } from './playbook-vars.ts';
import { RunSlots } from './run-slots.ts';
import { atMost } from '../shared/at-most.ts';
import type { RunFilter, RunsStore } from './runs-store.ts';
import {
  FINAL_STATUSES,
  type PlaybookRunner,
  type Run,
  type RunHandle,
  type RunKind,
  type RunOutcome,
  type RunProgress,
} from './types.ts';

/** Writes first: an apply never waits in the queue behind gathers or catalog runs. */
const SLOT_PRIORITY: Record<RunKind, number> = { apply: 0, gather: 1, playbook: 1 };

interface Tracked {
  done: Promise<Run>;
  handle: RunHandle | null;
  cancel(): void;
}

export interface RunRequest {
  kind: RunKind;
  playbookName: string;
  playbookRoot: string;
  playbookFile: string;
  hosts: string[];
  limit: string[];
  extravars: Record<string, unknown>;
  /** Per-host variables, each host's in its own file (routeplane's apply runs). */
  hostVars?: Record<string, Record<string, unknown>>;
  actor: Actor;
}

type RunFinishedHook = (run: Run) => Promise<void>;

/** What runs tell the metrics (metrics/metrics.ts); seconds, by kind and final status. */
export interface RunMetrics {
  runStarted(kind: RunKind, queuedSeconds: number): void;
  runEnded(kind: RunKind, outcome: string, seconds: number): void;
}

type ServiceConfig = Pick<Config, 'maxConcurrentRuns' | 'allowLocalWrites' | 'playbooksDir'>;

/** Records, schedules, executes, cancels and awaits runs. */
export class RunsService {
  private readonly slots: RunSlots;
  private readonly tracked = new Map<string, Tracked>();
  private readonly finishedHooks: RunFinishedHook[] = [];
  private readonly changeHooks: ((run: Run) => void)[] = [];
  private readonly progressHooks: ((run: Run, progress: RunProgress) => void)[] = [];
  private accepting = true;

  constructor(
    private readonly config: ServiceConfig,
    private readonly store: RunsStore,
    private readonly runner: PlaybookRunner,
    private readonly catalog: PlaybookCatalog,
    private readonly inventory: InventorySource,
    private readonly presence: InstancePresence,
    private readonly logger: Logger,
    private readonly metrics?: RunMetrics,
  ) {
    this.slots = new RunSlots(config.maxConcurrentRuns);
  }

  private finisher: FinishRecorder | null = null;

  /** Records run ends through database errors (retried; the hooks run whatever happens). */
  get finishes(): FinishRecorder {
    return (this.finisher ??= new FinishRecorder(this.store, this.logger));
  }

  onRunFinished(hook: RunFinishedHook): void {
    this.finishedHooks.push(hook);
  }

  /** Told each run as it is queued, starts and ends (the live `runs` topics). Never awaited. */
  onRunChanged(hook: (run: Run) => void): void {
    this.changeHooks.push(hook);
  }

  /** Told each task start and host result of a running run, as ansible prints them. */
  onRunProgress(hook: (run: Run, progress: RunProgress) => void): void {
    this.progressHooks.push(hook);
  }

  private changed(run: Run): void {
    for (const hook of this.changeHooks) hook(run);
  }

  /** The catalog, with the variables each playbook accepts (for forms in the deployer UI). */
  playbooks(): Promise<CatalogListing[]> {
    return this.catalog.list();
  }

  /** Checks and starts a catalog playbook; everything invalid is a 400 before any process. */
  async startCatalogRun(
    input: { playbook: string; limit?: string[]; extravars?: Record<string, unknown> },
    actor: Actor,
  ): Promise<{ run: Run; done: Promise<Run> }> {
    const entry = await this.catalog.resolve(input.playbook);
    const extravars = checkExtravars(entry.name, entry.vars, input.extravars ?? {});
    const inv = await this.inventory.current();
    const limit = input.limit ?? ['all'];
    const { hosts, unknown } = resolveTargets(inv, limit);
    if (unknown.length > 0) {
      const i = limit.indexOf(unknown[0]!);
      throw ValidationError.field(
        `/body/limit/${i}`,
        `'${unknown[0]}' is not a host or group of the inventory`,
      );
    }
    if (hosts.length === 0) throw ValidationError.field('/body/limit', 'matches no host');
    const local = hosts.filter((h) => inv.hosts.get(h)?.local);
    if (local.length > 0 && !this.config.allowLocalWrites) {
      throw new ConflictError(
        `${local.join(', ')} is the machine routeplane runs on and is read-only; set ALLOW_LOCAL_WRITES=true to run catalog playbooks on it`,
      );
    }
    return this.start({
      kind: 'playbook',
      playbookName: entry.name,
      playbookRoot: entry.root,
      playbookFile: entry.file,
      hosts,
      limit,
      extravars,
      actor,
    });
  }

  async start(req: RunRequest): Promise<{ run: Run; done: Promise<Run> }> {
    if (!this.accepting) throw new ServiceUnavailableError('routeplane is shutting down');
    const run = await this.store.insert({
      id: randomUUID(),
      kind: req.kind,
      playbook: req.playbookName,
      hosts: req.hosts,
      limit: req.limit,
      requestedBy: req.actor.name,
      owner: this.presence.id,
    });
    this.logger.info(
      {
        event: 'run.queued',
        run_id: run.id,
        kind: run.kind,
        playbook: run.playbook,
        actor: req.actor.name,
      },
      'run queued',
    );
    this.changed(run);
    let canceledWhileQueued: () => void = () => undefined;
    const queuedCancel = new Promise<false>(
      (resolve) => (canceledWhileQueued = () => resolve(false)),
    );
    const tracked: Tracked = {
      handle: null,
      cancel: () => {
        if (tracked.handle) tracked.handle.cancel();
        else if (this.slots.withdraw(run.id)) canceledWhileQueued();
        else cancelOnStart = true;
      },
      done: null as unknown as Promise<Run>,
    };
    let cancelOnStart = false;
    const queuedAt = performance.now();
    tracked.done = (async () => {
      const granted = await Promise.race([
        this.slots.acquire(run.id, SLOT_PRIORITY[req.kind]).then(() => true),
        queuedCancel,
      ]);
      const startedAt = performance.now();
      if (granted) this.metrics?.runStarted(req.kind, (startedAt - queuedAt) / 1000);
      let outcome: RunOutcome;
      if (!granted) {
        outcome = {
          status: 'canceled',
          rc: null,
          summary: {},
          results: [],
          error: 'canceled while queued',
          log: '',
        };
      } else {
        try {
          await this.store.markRunning(run.id);
          const running: Run = { ...run, status: 'running', startedAt: new Date() };
          this.changed(running);
          tracked.handle = this.runner.start({
            runId: run.id,
            playbookRoot: req.playbookRoot,
            playbookFile: req.playbookFile,
            hosts: req.hosts,
            extravars: req.extravars,
            ...(req.hostVars ? { hostVars: req.hostVars } : {}),
            workspaceParent: this.presence.workspaceDir ?? undefined,
            onProgress: (p) => {
              for (const hook of this.progressHooks) hook(running, p);
            },
            onSpawned: (pgid) =>
              void this.store
                .recordProcess(run.id, pgid)
                .catch((err: unknown) =>
                  this.logger.warn(
                    { event: 'run.pgid_unrecorded', run_id: run.id, err },
                    'could not record the process group of a run',
                  ),
                ),
          });
          if (cancelOnStart) tracked.handle.cancel();
          outcome = await tracked.handle.done;
        } catch (err) {
          this.logger.error(
            { event: 'run.crashed', run_id: run.id, err },
            'run could not be executed',
          );
          outcome = {
            status: 'error',
            rc: null,
            summary: {},
            results: [],
            error: (err as Error).message,
            log: '',
          };
        } finally {
          this.slots.release();
        }
      }
      this.metrics?.runEnded(
        req.kind,
        outcome.status,
        granted ? (performance.now() - startedAt) / 1000 : 0,
      );
      const finished = await this.finishes.record(run, outcome);
      this.changed(finished);
      for (const hook of this.finishedHooks) {
        await hook(finished).catch((err) =>
          this.logger.error(
            { event: 'run.hook_failed', run_id: run.id, err },
            'post-run hook failed',
          ),
        );
      }
      this.tracked.delete(run.id);
      this.logger.info(
        { event: 'run.finished', run_id: run.id, status: finished.status, rc: finished.rc },
        'run finished',
      );
      return finished;
    })();
    this.tracked.set(run.id, tracked);
    return { run, done: tracked.done };
  }

  async get(id: string): Promise<Run> {
    const run = await this.store.get(id);
    if (!run) throw new NotFoundError(`No run ${id}`);
    return run;
  }

  list(filter: RunFilter) {
    return this.store.list(filter);
  }

  /** The run once it has ended, or as it stands after `ms`. */
  async waitFor(id: string, done: Promise<Run> | undefined, ms: number): Promise<Run> {
    const pending = done ?? this.tracked.get(id)?.done;
    if (pending && ms > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)));
      const ended = await Promise.race([pending, timeout]);
      clearTimeout(timer);
      if (ended) return ended;
    }
    return this.get(id);
  }

  async cancel(id: string): Promise<Run> {
    const run = await this.get(id);
    if (FINAL_STATUSES.includes(run.status)) {
      throw new ConflictError(`Run ${id} has already ended (${run.status})`, { run_id: id });
    }
    const tracked = this.tracked.get(id);
    if (!tracked) {
      throw new ConflictError(
        `Run ${id} is executed by another routeplane instance (${run.owner})`,
        {
          run_id: id,
        },
      );
    }
    tracked.cancel();
    return tracked.done;
  }

  /** Runs orphaned by a dead process end as interrupted (at start-up, and on demand). */
  async interruptOrphans(): Promise<Run[]> {
    const owners = await this.store.ownersOfUnfinished(this.presence.id);
    const dead = await this.presence.deadAmong(owners);
    const runs = await this.store.markInterrupted(dead);
    for (const r of runs) {
      this.logger.warn(
        { event: 'run.interrupted', run_id: r.id, owner: r.owner },
        'orphaned run marked interrupted',
      );
    }
    return runs;
  }

  /** Stops accepting runs, lets running ones finish up to `graceMs`, then cancels the rest. */
  async shutdown(graceMs: number): Promise<void> {
    this.accepting = false;
    const all = () => Promise.allSettled([...this.tracked.values()].map((t) => t.done));
    await atMost(all(), graceMs);
    for (const t of this.tracked.values()) t.cancel();
    await all();
    await this.finishes.close();
  }

  get activeCount(): number {
    return this.tracked.size;
  }
}
