import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../logger.ts';
import { SYNC_STATES, type SyncState } from '../routes/types.ts';
import { WriteLag, type HostApplied } from './write-lag.ts';

/** The operation label of a request no operation of the contract matched. */
export const UNKNOWN_OPERATION = 'unknown';

// Buckets in seconds. A run costs at least Ansible's start-up (about a second cold) and is
// bounded by RUN_TIMEOUT_S; lags are what the benchmarks measure (a second or two).
const RUN_BUCKETS = [0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600, 1800];
const WAIT_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300];
const LAG_BUCKETS = [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 3600];
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60];

export interface MetricsOptions {
  /** Hosts by sync state, read when scraped (host-sync-states.ts); absent: not exported. */
  hostsBySyncState?: () => Promise<Map<SyncState, number>>;
  /** Node's process metrics (CPU, memory, event loop, GC): only when they will be scraped. */
  processMetrics?: boolean;
  logger?: Logger;
}

/**
 * routeplane's Prometheus metrics, in a registry of their own (never prom-client's global
 * one), so several servers in one process each count their own. Labels take only values from
 * closed sets: run kinds and statuses, operationIds of the contract, HTTP status codes, sync
 * states. Never a host, a path, a token or an error text.
 */
export class Metrics {
  readonly registry = new Registry();

  /** Runs by kind and final status, from the moment they start (0 s if canceled while queued). */
  readonly runDuration = new Histogram({
    name: 'routeplane_run_duration_seconds',
    help: 'Duration of ansible runs by kind and outcome, from start to end',
    labelNames: ['kind', 'outcome'] as const,
    buckets: RUN_BUCKETS,
    registers: [this.registry],
  });

  readonly runQueueWait = new Histogram({
    name: 'routeplane_run_queue_wait_seconds',
    help: 'Time a run spent queued (MAX_CONCURRENT_RUNS) before it started',
    labelNames: ['kind'] as const,
    buckets: WAIT_BUCKETS,
    registers: [this.registry],
  });

  readonly writeToKernel = new Histogram({
    name: 'routeplane_write_to_kernel_seconds',
    help: "Time from a write's commit to the end of the successful apply run that carried it to its host",
    buckets: LAG_BUCKETS,
    registers: [this.registry],
  });

  readonly scheduleLag = new Histogram({
    name: 'routeplane_schedule_lag_seconds',
    help: "Time from a scheduled transition's due time (create_at, delete_at) to when it fired",
    labelNames: ['kind'] as const,
    buckets: LAG_BUCKETS,
    registers: [this.registry],
  });

  readonly reconcileRetries = new Counter({
    name: 'routeplane_reconcile_retries_total',
    help: 'Host applies that did not converge and were scheduled for a retry',
    registers: [this.registry],
  });

  /** Incremented by the warm runner each time its Ansible process has to be started again. */
  readonly warmRunnerRestarts = new Counter({
    name: 'routeplane_warm_runner_restarts_total',
    help: 'Times the warm Ansible process died and was restarted',
    registers: [this.registry],
  });

  readonly httpRequestDuration = new Histogram({
    name: 'routeplane_http_request_duration_seconds',
    help: 'HTTP request durations by OpenAPI operationId and status code',
    labelNames: ['operation', 'status'] as const,
    buckets: HTTP_BUCKETS,
    registers: [this.registry],
  });

  readonly failoverSwitches = new Counter({
    name: 'routeplane_failover_switches_total',
    help: 'Candidate routes that changed the gateways they use, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly gatewayHealthChanges = new Counter({
    name: 'routeplane_gateway_health_changes_total',
    help: "Health changes of routes' candidate gateways as their hosts see them, by new health",
    labelNames: ['health'] as const,
    registers: [this.registry],
  });

  readonly probeResults = new Counter({
    name: 'routeplane_probe_results_total',
    help: 'Gateway health probes finished, by check type and outcome',
    labelNames: ['check', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly degradedRoutes = new Gauge({
    name: 'routeplane_failover_degraded_routes',
    help: 'Candidate routes this replica decides for with no healthy gateway (kept as they were)',
    registers: [this.registry],
  });

  /** Where each checking point's prober stands, read at scrape time (set by wiring). */
  private proberStates: () => string[] = () => [];

  readonly probers = new Gauge({
    name: 'routeplane_probers',
    help: "Checking points' probers of this replica, by state (watching: running its checks)",
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: () => {
      const states = this.proberStates();
      for (const state of ['connecting', 'watching', 'unreachable', 'not_watched']) {
        this.probers.set({ state }, states.filter((s) => s === state).length);
      }
    },
  });

  /** Tells the `routeplane_probers` gauge where to read the probers' states. */
  readProbersFrom(fn: () => string[]): void {
    this.proberStates = fn;
  }

  readonly writes: WriteLag;

  constructor(opts: MetricsOptions = {}) {
    this.writes = new WriteLag((s) => this.writeToKernel.observe(s));
    const source = opts.hostsBySyncState;
    if (source) {
      const logger = opts.logger;
      new Gauge({
        name: 'routeplane_hosts',
        help: 'Hosts with routes, by the worst sync state among their routes',
        labelNames: ['sync_state'] as const,
        registers: [this.registry],
        async collect() {
          try {
            const counts = await source();
            for (const state of SYNC_STATES)
              this.set({ sync_state: state }, counts.get(state) ?? 0);
          } catch (err) {
            // A scrape without this gauge, rather than a failed scrape.
            this.reset();
            logger?.warn({ event: 'metrics.collect_failed', err }, 'hosts by sync state unread');
          }
        },
      });
    }
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** The Prometheus text exposition of every metric. */
  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  runStarted(kind: string, queuedSeconds: number): void {
    this.runQueueWait.observe({ kind }, queuedSeconds);
  }

  runEnded(kind: string, outcome: string, seconds: number): void {
    this.runDuration.observe({ kind, outcome }, seconds);
  }

  transitionsFired(kind: string, dueAts: (Date | null | undefined)[], firedAt = Date.now()): void {
    for (const due of dueAts) {
      if (due) this.scheduleLag.observe({ kind }, Math.max(0, firedAt - due.getTime()) / 1000);
    }
  }

  /** Host applies as the reconciler settled them: retries counted, write lags observed. */
  hostsSettled(hosts: HostApplied[]): void {
    const retries = hosts.filter((h) => h.failed).length;
    if (retries > 0) this.reconcileRetries.inc(retries);
    this.writes.applied(hosts);
  }

  httpRequest(operation: string | null | undefined, status: number, seconds: number): void {
    this.httpRequestDuration.observe(
      { operation: operation ?? UNKNOWN_OPERATION, status: String(status) },
      seconds,
    );
  }
}
