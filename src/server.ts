import type { Server } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { buildApp } from './app.ts';
import { loadTokens } from './auth/load-tokens.ts';
import { TokenRegistry } from './auth/token-registry.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { InventoryError } from './hosts/inventory.ts';
import { InventorySource } from './hosts/inventory-source.ts';
import { lockDataDir } from './db/data-dir-lock.ts';
import { migrateToLatest } from './db/database.ts';
import { createLogger, type Logger } from './logger.ts';
import { startMetricsServer, type MetricsListener } from './metrics/metrics-server.ts';
import { atMost } from './shared/at-most.ts';
import {
  claimInstanceDir,
  releaseInstanceDir,
  sweepDeadInstances,
} from './runs/instance-workspaces.ts';
import { RunRetention } from './runs/run-retention.ts';
import { RunsStore } from './runs/runs-store.ts';
import { attachWebSocket } from './ws/ws-server.ts';
import { wireServices, type Services, type WiringOverrides } from './wiring.ts';

const PREPARE_RUNNER_AFTER_MS = 1_000;
const ORPHAN_SWEEP_MS = 5_000;

export interface RunningServer {
  url: string;
  port: number;
  /** The metrics listener's /metrics URL; null when METRICS_PORT is unset. */
  metricsUrl: string | null;
  services: Services;
  /** Re-reads API_TOKENS / API_TOKENS_FILE (SIGHUP): removed tokens stop working at once. */
  reloadTokens(): void;
  stop(): Promise<void>;
}

/** Opens the database, migrates, recovers orphaned runs, and listens. */
export async function startServer(
  config: Config,
  opts: WiringOverrides & { logger?: Logger } = {},
): Promise<RunningServer> {
  const logger = opts.logger ?? createLogger(config.logLevel);
  // Ansible must be able to read the fleet before anything is opened or locked.
  const inventory = opts.inventory ?? new InventorySource(config);
  try {
    await inventory.current();
  } catch (err) {
    if (!(err instanceof InventoryError)) throw err;
    throw new ConfigError(`invalid configuration: INVENTORY: ${err.message}`);
  }
  const unlock = await lockDataDir(config.dataDir);
  let services: Services | undefined;
  try {
    // Behind Kong the gateway authenticates; no token of ours (nor a bootstrap one) applies.
    const tokens = config.authMode === 'kong' ? TokenRegistry.empty() : loadTokens(config, logger);
    services = wireServices(config, logger, { ...opts, inventory });
    await migrateToLatest(services.db);
    await services.adoptFirewalls(await inventory.current());
    await services.presence.announce();
    await services.runs.interruptOrphans();
    const presence = services.presence;
    const work = services.work;
    const runsStore = new RunsStore(services.db.knex);
    presence.workspaceDir = await claimInstanceDir(config.dataDir, presence.id);
    // Only instances of this data directory whose presence has ended: never a live one's.
    await sweepDeadInstances({
      dataDir: config.dataDir,
      self: presence.id,
      deadAmong: (owners) => presence.deadAmong(owners),
      processesOf: (owners) => runsStore.processesOf(owners),
      logger,
    }).catch((err: unknown) =>
      logger.warn({ event: 'workspaces.sweep_failed', err }, 'could not sweep old workspaces'),
    );
    const retention = new RunRetention(config.runRetentionDays, runsStore, logger);
    await retention.start();
    const app = buildApp({
      config,
      logger,
      tokens,
      readiness: services.readiness,
      runs: services.runs,
      hosts: services.hosts,
      routes: services.routes,
      firewall: services.firewall,
      sets: services.sets,
      firewallPreview: services.firewallPreview,
      compat: services.compat,
      tickets: services.live.tickets,
      // Per-request figures only when something can read them (METRICS_PORT): observing a
      // labelled histogram is a measurable share of a cached read.
      metrics: config.metricsPort === undefined ? undefined : services.metrics,
      expectWrite: () => work.expectWrite(),
    });
    const server: Server = await new Promise((resolve, reject) => {
      const s = app.listen(config.port, config.host, (err?: Error) =>
        err ? reject(err) : resolve(s),
      );
    });
    // Long waits (?wait=) must not be cut by Node's default request timeout.
    server.requestTimeout = 0;
    let metricsListener: MetricsListener | null = null;
    if (config.metricsPort !== undefined) {
      try {
        metricsListener = await startMetricsServer({
          metrics: services.metrics,
          port: config.metricsPort,
          host: config.metricsHost,
          logger,
        });
      } catch (err) {
        server.close();
        throw err;
      }
    }
    const sockets = attachWebSocket(server, {
      hub: services.live.hub,
      tokens,
      tickets: services.live.tickets,
      config,
      logger,
    });
    await services.live.bus.start();
    await services.live.clients
      .sweep((owners) => services!.presence.deadAmong(owners))
      .catch((err: unknown) =>
        logger.warn({ event: 'live.clients_sweep_failed', err }, 'could not sweep clients'),
      );
    const { port } = server.address() as AddressInfo;
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    logger.info(
      { event: 'server.listening', port, backend: services.db.backend },
      'routeplane listening',
    );
    const live = services;
    // After a restart: overdue transitions fire at once, and every host whose kernel may
    // differ (including those of interrupted runs) is reconciled.
    // An embedded database has one process: whatever it held before a crash is released.
    if (live.db.backend === 'pglite') await live.work.releaseAll();
    await live.scheduler.start();
    await live.reconciler.start();
    // Every host's desired objects and the latest runs, so each topic is whole from the start.
    void live.live.desired
      .seed()
      .catch((err: unknown) =>
        logger.warn({ event: 'live.seed_failed', err }, 'could not seed the live topics'),
      );
    await live.live.watching.start();
    await live.live.failover.start();
    const livePrune = setInterval(() => void live.live.desired.prune(), 600_000);
    livePrune.unref();
    // The warm runner imports Ansible before the first change needs it, once start-up's own
    // work (claims, overdue transitions) has had the CPU.
    const prepareRunner = setTimeout(() => live.runner.prepare?.(), PREPARE_RUNNER_AFTER_MS);
    prepareRunner.unref();
    // A replica that died while others run leaves runs marked running: they are ended once
    // its presence has lapsed (instance-presence.ts), looked for this often.
    const orphanSweep =
      live.db.backend === 'postgres'
        ? setInterval(() => {
            live.runs
              .interruptOrphans()
              .catch((err: unknown) =>
                logger.warn({ event: 'runs.orphan_sweep_failed', err }, 'orphan sweep failed'),
              );
          }, ORPHAN_SWEEP_MS)
        : null;
    orphanSweep?.unref();
    let stopping: Promise<void> | null = null;
    const stop = () =>
      (stopping ??= (async () => {
        logger.info({ event: 'server.stopping' }, 'shutting down');
        const closed = new Promise<void>((r) => server.close(() => r()));
        const metricsClosed = metricsListener?.close();
        if (orphanSweep) clearInterval(orphanSweep);
        clearInterval(livePrune);
        sockets.close();
        live.live.desired.stop();
        await live.live.clients.stop();
        await live.live.failover.stop();
        await live.live.watching.stop();
        await live.live.bus.stop();
        clearTimeout(prepareRunner);
        await live.scheduler.stop();
        await retention.stop();
        live.reconciler.stop();
        if (config.removeRoutesOnShutdown) await removeRoutesOnShutdown(live, config, logger);
        await live.runs.shutdown(config.shutdownGraceMs);
        await live.reconciler.drained();
        await live.runner.close?.();
        server.closeAllConnections();
        await closed;
        await metricsClosed;
        if (live.presence.workspaceDir) await releaseInstanceDir(live.presence.workspaceDir);
        await live.presence.withdraw();
        await live.db.close();
        await unlock();
        logger.info({ event: 'server.stopped' }, 'stopped');
      })());
    return {
      url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
      port,
      metricsUrl: metricsListener?.url ?? null,
      services: live,
      reloadTokens: () => {
        if (config.authMode === 'kong') return;
        tokens.replaceWith(loadTokens(config, logger));
        logger.info({ event: 'auth.tokens_reloaded', count: tokens.size }, 'tokens re-read');
      },
      stop,
    };
  } catch (err) {
    await services?.presence.withdraw();
    await services?.db.close().catch(() => undefined);
    await unlock();
    throw err;
  }
}

/**
 * REMOVE_ROUTES_ON_SHUTDOWN: the routes leave the kernels when the service stops, which is
 * when its last process stops; a replica going away while others run changes nothing. The
 * apply in flight ends first (within the shutdown grace) so it cannot put routes back.
 */
async function removeRoutesOnShutdown(
  live: Services,
  config: Pick<Config, 'shutdownGraceMs'>,
  logger: Logger,
): Promise<void> {
  try {
    await atMost(live.reconciler.drained(), config.shutdownGraceMs);
    const others = await live.presence.othersAlive();
    if (others > 0) {
      logger.info(
        { event: 'routes.kept_on_shutdown', other_instances: others },
        'other routeplane processes still run: routes stay on the hosts',
      );
      return;
    }
    const { run, skipped } = await live.reconciler.removeAllFromHosts();
    if (skipped.length > 0) {
      logger.warn(
        { event: 'routes.remove_on_shutdown_skipped', hosts: skipped },
        'hosts still being applied keep their routes',
      );
    }
    if (run) {
      logger.info(
        { event: 'routes.removed_on_shutdown', run_id: run.id, status: run.status },
        'routes removed from hosts',
      );
    }
  } catch (err) {
    logger.error({ event: 'routes.remove_on_shutdown_failed', err }, 'could not remove routes');
  }
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`routeplane: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const logger = createLogger(config.logLevel);
  let running: RunningServer;
  try {
    running = await startServer(config, { logger });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`routeplane: ${err.message}\n`);
      process.exit(2);
    }
    logger.fatal(
      { event: 'server.start_failed', err: (err as Error).message },
      'routeplane could not start',
    );
    process.exit(1);
  }
  // SIGHUP re-reads the inventory now (edits are also picked up by their digest).
  process.on('SIGHUP', () => {
    running.services.inventory.reload();
    try {
      running.reloadTokens();
    } catch (err) {
      // A broken file keeps the tokens in force; nothing is opened up by a typo.
      logger.error({ event: 'auth.tokens_reload_failed', err }, 'tokens not re-read');
    }
    logger.info({ event: 'inventory.reload' }, 'inventory will be re-read');
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      running.stop().then(
        () => process.exit(0),
        (err) => {
          logger.error({ event: 'server.stop_failed', err }, 'unclean shutdown');
          process.exit(1);
        },
      );
    });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  void main();
}
