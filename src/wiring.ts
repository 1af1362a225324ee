import { endArrivingWrite } from './http/arriving-writes.ts';
import type { TokenRegistry } from './auth/token-registry.ts';
import type { Config } from './config.ts';
import { openDatabase, pingDatabase, type Database } from './db/database.ts';
import { HostStateStore } from './hosts/host-state-store.ts';
import { HostsService } from './hosts/hosts-service.ts';
import { InventorySource } from './hosts/inventory-source.ts';
import type { Inventory } from './hosts/inventory.ts';
import { ReplicaAddresses } from './hosts/replica-addresses.ts';
import { ManagementAddresses } from './hosts/management-address.ts';
import { readinessProbe, type ReadinessProbe } from './http/health-handlers.ts';
import type { Logger } from './logger.ts';
import { CompatService } from './compat/compat-service.ts';
import { hostClaimsFor } from './reconciler/host-claims.ts';
import { HostWorkStore } from './reconciler/host-work-store.ts';
import { Reconciler } from './reconciler/reconciler.ts';
import { FailoverChecks } from './firewall/failover-checks.ts';
import { FirewallKind } from './firewall/firewall-kind.ts';
import { FirewallPreview } from './firewall/firewall-preview.ts';
import { FirewallService, managedByInventory } from './firewall/firewall-service.ts';
import { FirewallStore } from './firewall/firewall-store.ts';
import { managementOf } from './firewall/management-sources.ts';
import { RouteOpenings } from './firewall/route-openings.ts';
import { SetService, visibleSets } from './firewall/set-service.ts';
import { SetStore } from './firewall/set-store.ts';
import { RoutesKind } from './routes/routes-kind.ts';
import { LockoutGuard } from './routes/lockout-guard.ts';
import { hostsBySyncState } from './metrics/host-sync-states.ts';
import { MeasuredHostWorkStore } from './metrics/measured-work.ts';
import { Metrics } from './metrics/metrics.ts';
import { RoutesService } from './routes/routes-service.ts';
import { RoutesStore } from './routes/routes-store.ts';
import { AnsibleRunner } from './runs/ansible-runner.ts';
import { Scheduler } from './scheduler/scheduler.ts';
import { InstancePresence } from './runs/instance-presence.ts';
import { PlaybookCatalog } from './runs/playbook-catalog.ts';
import { RunsService } from './runs/runs-service.ts';
import { RunsStore } from './runs/runs-store.ts';
import type { PlaybookRunner } from './runs/types.ts';
import { loadContract } from './http/contract.ts';
import { DesiredFeeds } from './live/desired-feeds.ts';
import { HostFeed } from './live/host-feed.ts';
import { DriftResponder } from './live/drift-responder.ts';
import { LiveBus } from './live/live-bus.ts';
import { topicSources } from './live/topic-sources.ts';
import { TopicLog } from './live/topic-log.ts';
import { Hub } from './ws/hub.ts';
import { topicPatternsOf } from './ws/protocol.ts';
import { WsTickets } from './ws/ws-tickets.ts';
import { ClientsFeed } from './ws/clients-feed.ts';
import { HostWatching, WATCH_LEASE_TTL_MS } from './live/host-watching.ts';
import { WatchLeases } from './live/watch-leases.ts';
import { FailoverEngine, PROBE_LEASE_TTL_MS } from './failover/failover-engine.ts';
import { HostProbers } from './failover/probe/host-probers.ts';

export interface Services {
  db: Database;
  inventory: InventorySource;
  presence: InstancePresence;
  runner: PlaybookRunner;
  runs: RunsService;
  hosts: HostsService;
  routes: RoutesService;
  firewall: FirewallService;
  firewallPreview: FirewallPreview;
  /** Manages the firewalls the inventory names (routeplane_firewall_managed). */
  adoptFirewalls(inv: Inventory): Promise<void>;
  sets: SetService;
  compat: CompatService | null;
  reconciler: Reconciler;
  scheduler: Scheduler;
  work: HostWorkStore;
  readiness: ReadinessProbe;
  metrics: Metrics;
  live: LiveServices;
}

/** Live state: the topics, what feeds them, and the WebSocket hub of this process. */
export interface LiveServices {
  log: TopicLog;
  desired: DesiredFeeds;
  hosts: HostFeed;
  hub: Hub;
  bus: LiveBus;
  tickets: WsTickets;
  drift: DriftResponder;
  clients: ClientsFeed;
  watching: HostWatching;
  /** FAILOVER_CHECKS: candidate gateways' probers and the decisions that follow. */
  failover: FailoverService;
}

export interface WiringOverrides {
  db?: Database;
  runner?: PlaybookRunner;
  inventory?: InventorySource;
  metrics?: Metrics;
}

/** Creates every store and service and hands each its dependencies; nothing else `new`s them. */
export function wireServices(
  config: Config,
  logger: Logger,
  overrides: WiringOverrides = {},
): Services {
  const db =
    overrides.db ?? openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  // Process metrics (CPU, memory, event loop) only when a listener will serve them.
  const metrics =
    overrides.metrics ??
    new Metrics({
      hostsBySyncState: () => hostsBySyncState(db.knex),
      processMetrics: config.metricsPort !== undefined,
      logger,
    });
  const presence = new InstancePresence(db);
  const runner =
    overrides.runner ??
    new AnsibleRunner(config, logger, {
      workRoot: () => presence.workspaceDir ?? undefined,
      onWarmRestart: () => metrics.warmRunnerRestarts.inc(),
    });
  const inventory = overrides.inventory ?? new InventorySource(config);
  // A host that left the inventory keeps no SSH master open.
  inventory.onLoaded((inv) => void runner.retainHosts?.(inv.hosts.keys()));
  const runs = new RunsService(
    config,
    new RunsStore(db.knex),
    runner,
    new PlaybookCatalog(config.catalogDir),
    inventory,
    presence,
    logger,
    metrics,
  );
  const hostStates = new HostStateStore(db.knex);
  const hosts = new HostsService(config, inventory, hostStates, runs);
  const work: HostWorkStore = new MeasuredHostWorkStore(db.knex, metrics.writes);
  const routesStore = new RoutesStore(db.knex, work);
  const firewallStore = new FirewallStore(db.knex, work);
  const setStore = new SetStore(db.knex, work);
  // A host whose inventory says routeplane manages its firewall gets its table without a rule:
  // adopted at start-up (server.ts, once migrated) and whenever the inventory changes.
  const adoptFirewalls = async (inv: Inventory): Promise<void> => {
    const named = [...inv.hosts.keys()].filter(
      (h) => managedByInventory(inv, h) && !inv.hosts.get(h)!.local,
    );
    await firewallStore.adopt(named);
  };
  inventory.onLoaded((inv) => {
    adoptFirewalls(inv).catch((err: unknown) =>
      logger.warn({ event: 'firewall.adopt_failed', err }, 'could not adopt inventory hosts'),
    );
  });
  const replicaAddresses = new ReplicaAddresses(db.knex, presence.id, db.backend === 'postgres');
  const managementAddresses = new ManagementAddresses(inventory, (a) => replicaAddresses.record(a));
  // A managed gateway's table accepts the checks of the candidate routes naming it; a change
  // of candidate routes owes their gateways an apply.
  const failoverChecks = new FailoverChecks({
    knex: db.knex,
    inventory,
    firewall: firewallStore,
    work,
    candidateRoutes: () => routesStore.candidateRoutes(),
    logger,
  });
  routesStore.onChanged((ids) => failoverChecks.routesChanged(ids));
  const firewallKind = new FirewallKind(
    firewallStore,
    config.firewallConfirmS,
    (hosts) => visibleSets(setStore, inventory, hosts),
    (hosts) => replicaAddresses.of(hosts),
    (hosts) => failoverChecks.acceptsOf(hosts),
  );
  const reconciler = new Reconciler({
    config,
    work,
    claims: hostClaimsFor(db, work, presence.id),
    // One apply run carries every kind, in this order.
    kinds: [new RoutesKind(routesStore, config.routeProto), firewallKind],
    runs,
    owner: presence.id,
    logger,
    managementAddresses: (hosts) => managementAddresses.of(hosts),
    onSettled: (hosts) => metrics.hostsSettled(hosts),
    // Called in the request's async context: a caller that waits for the kernel has written.
    onCallerWaiting: endArrivingWrite,
  });
  // A write committed here is claimed at once, not at the next poll.
  work.onBumpCommitted(() => reconciler.wake());
  // A claim waiting for writes on their way looks again when the last of them has arrived.
  work.onWriteEnded(() => reconciler.writeEnded());
  const lockout = new LockoutGuard({
    managementAddresses: (h) => managementAddresses.of(h),
    knownRoutes: async (h) => (await hostStates.get(h))?.state?.routes ?? null,
  });
  const routes = new RoutesService(config, routesStore, inventory, reconciler, lockout);
  // A fired transition has already recorded its apply (same transaction): this only makes
  // this process look now rather than at its next poll.
  const scheduler = new Scheduler(
    config,
    [
      {
        name: 'routes',
        fireDue: async (n) =>
          (await routesStore.fireDue(n)).map((r) => ({
            host: r.host,
            dueAt: r.status === 'expired' ? r.deleteAt : r.createAt,
          })),
        nextDueAt: () => routesStore.nextDueAt(),
      },
      {
        name: 'firewall',
        fireDue: async (n) =>
          (await firewallStore.fireDue(n)).map((r) => ({
            host: r.host,
            dueAt: r.status === 'expired' ? r.deleteAt : r.createAt,
          })),
        nextDueAt: () => firewallStore.nextDueAt(),
      },
    ],
    () => reconciler.wake(),
    logger,
    (kind, dueAts) => metrics.transitionsFired(kind, dueAts),
  );
  routes.onScheduleChange(() => scheduler.wake());
  const sets = new SetService(config, setStore, firewallStore, inventory, reconciler, (host) =>
    managementOf(host, inventory, managementAddresses),
  );
  const firewall = new FirewallService(
    config,
    firewallStore,
    inventory,
    reconciler,
    (host) => managementOf(host, inventory, managementAddresses, replicaAddresses),
    (host, refresh, actor) => hosts.get(host, refresh, actor),
    (spec, base, inv) => sets.resolve(spec, base, inv),
  );
  firewall.onScheduleChange(() => scheduler.wake());
  routes.followWith(new RouteOpenings(firewall, firewallStore));
  // A warning is advice: a route already recorded is answered whatever becomes of it.
  routes.warnWith((written) =>
    failoverChecks.warnings(written).catch((err: unknown) => {
      logger.warn({ event: 'routes.warnings_failed', err }, 'could not work out route warnings');
      return [];
    }),
  );
  const firewallPreview = new FirewallPreview(
    config,
    inventory,
    firewallKind,
    (h) => managementAddresses.of(h),
    runs,
    (h) => failoverChecks.previewWarnings(h),
  );
  const compat = config.compatHost
    ? new CompatService(config.compatHost, routes, hosts, config.routeWaitDefaultMs)
    : null;
  const live = wireLive(config, logger, {
    db,
    inventory,
    runs,
    hostStates,
    routesStore,
    firewallStore,
    runsStore: new RunsStore(db.knex),
    work,
    reconciler,
    presence,
    hostsService: hosts,
    runner,
    metrics,
    failoverChecks,
  });
  // Open to anyone: ready or not, never an error's text; a broken ansible-playbook is
  // re-probed at most every 30 s, never a process per probe.
  const readiness: ReadinessProbe = readinessProbe({
    backend: db.backend,
    ping: () => pingDatabase(db),
    version: () => runner.version(),
    logger,
  });
  return {
    db,
    inventory,
    presence,
    runner,
    runs,
    hosts,
    routes,
    firewall,
    firewallPreview,
    adoptFirewalls,
    sets,
    compat,
    reconciler,
    scheduler,
    work,
    readiness,
    metrics,
    live,
  };
}

function wireLive(
  config: Config,
  logger: Logger,
  d: {
    db: Database;
    inventory: InventorySource;
    runs: RunsService;
    hostStates: HostStateStore;
    routesStore: RoutesStore;
    firewallStore: FirewallStore;
    runsStore: RunsStore;
    work: HostWorkStore;
    reconciler: Reconciler;
    presence: InstancePresence;
    hostsService: HostsService;
    runner: PlaybookRunner;
    metrics: Metrics;
    failoverChecks: FailoverChecks;
  },
): LiveServices {
  const log = new TopicLog(d.db.knex, d.db.backend, config.wsReplay);
  const desired = new DesiredFeeds(log, d.routesStore, d.firewallStore, d.runsStore, logger);
  // Every committed change of a route's or a rule's row re-publishes that object.
  d.routesStore.onChanged((ids) => desired.routesChanged(ids));
  d.firewallStore.onChanged((ids) => desired.rulesChanged(ids));
  d.runs.onRunChanged((run) => desired.runChanged(run));
  d.runs.onRunProgress((run, p) => desired.runProgress(run, p));
  const hosts = new HostFeed(log, d.hostStates, d.inventory, config, logger);
  // Not awaited: a run's end (and the write waiting on it) must not wait for the live topics.
  d.runs.onRunFinished(async (run) => {
    void hosts.refreshed(Object.keys(run.summary));
  });
  const drift = new DriftResponder(config, d.routesStore, d.firewallStore, d.work, logger, () =>
    d.reconciler.wake(),
  );
  hosts.onState(async (host, state) => {
    await drift.check(host, state);
    await d.failoverChecks.addressesChanged(host, state.addresses);
  });
  const hub = new Hub({
    log,
    sources: topicSources({ inventory: d.inventory, log, hosts, desired }),
    patterns: topicPatternsOf(loadContract().document as unknown as Record<string, unknown>),
    logger,
    maxBufferedBytes: config.wsMaxBufferedBytes,
    heartbeatMs: config.wsHeartbeatMs,
  });
  const bus = new LiveBus(d.db, log, logger, {
    published: (p) => hub.published(p),
    reconnected: () => hub.catchUp(),
  });
  const tickets = new WsTickets(d.db.knex, config.wsTicketTtlMs);
  const clients = new ClientsFeed(log, hub, d.presence.id, logger);
  const watching = new HostWatching(config, {
    inventory: d.inventory,
    leases: new WatchLeases(d.db.knex, d.presence.id, WATCH_LEASE_TTL_MS),
    feed: hosts,
    gather: (host) => d.hostsService.get(host, true),
    mastersDir: async () => (await d.runner.mastersDir?.()) ?? null,
    logger,
  });
  const failover = wireFailover(config, logger, d, desired);
  return { log, desired, hosts, hub, bus, tickets, drift, clients, watching, failover };
}

/** The failover engine and its probers, started once the database is migrated. */
export interface FailoverService {
  start(): Promise<void>;
  stop(): Promise<void>;
  engine(): FailoverEngine | null;
}

function wireFailover(
  config: Config,
  logger: Logger,
  d: {
    db: Database;
    inventory: InventorySource;
    routesStore: RoutesStore;
    presence: InstancePresence;
    runner: PlaybookRunner;
    metrics: Metrics;
    failoverChecks: FailoverChecks;
    reconciler: Reconciler;
  },
  desired: DesiredFeeds,
): FailoverService {
  let engine: FailoverEngine | null = null;
  return {
    engine: () => engine,
    async start() {
      if (!config.failoverChecks) return;
      const mastersDir = (await d.runner.mastersDir?.()) ?? undefined;
      const probers = new HostProbers({
        logger,
        mastersDir,
        defaultPython: config.hostPython.startsWith('/') ? config.hostPython : undefined,
        playbooksDir: config.playbooksDir,
        onResult: (r) => engine?.observe(r),
        // Logged by the session itself; counted for /metrics when scraped.
        onStatus: () => undefined,
      });
      d.metrics.readProbersFrom(() =>
        probers.points().map((p) => probers.status(p)?.state ?? 'connecting'),
      );
      engine = new FailoverEngine({
        store: d.routesStore,
        inventory: d.inventory,
        leases: new WatchLeases(d.db.knex, d.presence.id, PROBE_LEASE_TTL_MS, 'host_probe_leases'),
        probers,
        logger,
        mastersDir,
        metrics: d.metrics,
        awaitingAccepts: (routes) => d.failoverChecks.awaitingAccepts(routes),
      });
      const running = engine;
      d.routesStore.onChanged((ids) => running.routesChanged(ids));
      // A switch is applied at once: it does not wait to share a run with writes (group commit).
      running.onEvents((events) => {
        if (events.some((e) => e.outcome.switched)) d.reconciler.wake(true);
      });
      running.onEvents((events) =>
        desired.failoverEvents(
          events.flatMap(({ route, point, outcome }) =>
            outcome.events.map((e) => ({
              kind: e.action,
              route_id: route.id,
              host: route.host,
              destination: route.to,
              checking_point: point,
              ...e.detail,
            })),
          ),
        ),
      );
      await running.start();
    },
    async stop() {
      await engine?.stop();
    },
  };
}

export type { TokenRegistry };
