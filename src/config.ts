import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { TokenRegistry } from './auth/token-registry.ts';
import { checkConfiguredPaths } from './config-paths.ts';

const boolean = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const seconds = (def: number, max: number) => z.coerce.number().int().min(1).max(max).default(def);

/** Every setting routeplane reads, with its default; README's configuration table mirrors this. */
const schema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  INVENTORY: z.string().min(1).default('inventory/hosts.yml'),
  PLAYBOOKS_DIR: z.string().min(1).default('playbooks'),
  CATALOG_DIR: z.string().min(1).default('playbooks/catalog'),
  API_TOKENS: z.string().optional(),
  API_TOKENS_FILE: z.string().optional(),
  AUTH_MODE: z.enum(['token', 'kong']).default('token'),
  GATEWAY_SECRET: z.string().optional(),
  GATEWAY_SECRET_FILE: z.string().optional(),
  VAULT_PASSWORD_FILE: z.string().optional(),
  VAULT_PASSWORD: z.string().min(1).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  RUN_TIMEOUT_S: seconds(900, 86400),
  RUN_CANCEL_GRACE_S: seconds(5, 600),
  MAX_CONCURRENT_RUNS: z.coerce.number().int().min(1).max(256).default(4),
  RUN_LOG_MAX_BYTES: z.coerce.number().int().min(1024).max(16_777_216).default(262_144),
  // Finished runs older than this are deleted (at start-up, then hourly); 0 keeps them forever.
  RUN_RETENTION_DAYS: z.coerce.number().int().min(0).max(3650).default(30),
  SHUTDOWN_GRACE_S: seconds(30, 3600),
  ALLOW_LOCAL_WRITES: boolean.default(false),
  ANSIBLE_PLAYBOOK: z.string().min(1).default('ansible-playbook'),
  ANSIBLE_INVENTORY: z.string().min(1).default('ansible-inventory'),
  REFRESH_MIN_INTERVAL_S: z.coerce.number().min(0).max(3600).default(2),
  MAX_BATCH_ITEMS: z.coerce.number().int().min(1).max(1_000_000).default(50_000),
  BODY_LIMIT: z
    .string()
    .regex(/^\d+(b|kb|mb)$/i, 'must look like 100kb or 1mb')
    .default('1mb'),
  VALIDATE_RESPONSES: boolean.default(false),
  ROUTE_PROTO: z.coerce.number().int().min(5).max(255).default(147),
  ROUTE_WAIT_S: z.coerce.number().int().min(0).max(3600).default(30),
  RECONCILE_RETRY_BASE_S: z.coerce.number().min(0.05).max(600).default(1),
  RECONCILE_RETRY_MAX_S: z.coerce.number().min(0.05).max(86400).default(60),
  SCHEDULER_MAX_SLEEP_S: z.coerce.number().min(0.1).max(3600).default(30),
  // Hosts one apply run claims at most: more due hosts go to further runs, here or on
  // other replicas, so replicas add apply capacity.
  CLAIM_MAX_HOSTS: z.coerce.number().int().min(1).max(10_000).default(100),
  // Every managed host is re-applied about this often as a safety net; 0 turns it off.
  CONVERGE_INTERVAL_S: z.coerce.number().min(0).max(604_800).default(300),
  // Whether drift found by convergence is repaired, or only reported (sync: drifted).
  REPAIR_DRIFT: boolean.default(true),
  REMOVE_ROUTES_ON_SHUTDOWN: boolean.default(false),
  // warm: one long-lived Python process imports Ansible once and forks a child per run;
  // spawn: a new ansible-playbook process per run.
  RUNNER: z.enum(['warm', 'spawn']).default('warm'),
  // An SSH master no run has used for this long is closed; 0 closes each after its run.
  // Longer than the default convergence interval with its jitter (up to 1.2 x 300 s): a
  // converged fleet keeps its connections, and a change reaches it without a handshake.
  SSH_MASTER_IDLE_S: z.coerce.number().int().min(0).max(86_400).default(600),
  // A firewall apply is reverted on the host unless routeplane confirms it over a new SSH
  // connection within this many seconds (a router's commit confirmed); 0 turns that off.
  // Generous: a run of many hosts with thousands of rules each confirms its first hosts only
  // once their tables are rendered and applied (30 s was too short for 20 x 5,000 rules).
  // Below 5 s a loaded controller's confirm could come too late and undo a good table.
  FIREWALL_CONFIRM_S: z.coerce
    .number()
    .int()
    .max(3600)
    .refine((v) => v === 0 || v >= 5, 'must be 0 (off) or at least 5')
    .default(120),
  // The Python on each host, unless the inventory says (ansible_python_interpreter): explicit,
  // because Ansible's discovery costs each run a round trip per host. auto: discover.
  HOST_PYTHON: z
    .string()
    .regex(
      /^(\/[A-Za-z0-9_.+/-]+|auto|auto_silent|auto_legacy|auto_legacy_silent)$/,
      'must be an absolute path or auto, auto_silent, auto_legacy, auto_legacy_silent',
    )
    .default('/usr/bin/python3'),
  // Prometheus metrics on their own listener (never routed by Kong); unset: off.
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  // One watcher per reachable host streams its links, addresses, routes and firewall as they
  // change (over SSH, locally for the controller); off: state is read by gathers only.
  WATCH_HOSTS: boolean.default(true),
  // Candidate gateways of routes are health-checked (one prober per checking host) and
  // routes switch between them; off: candidate routes stay on the gateway they use.
  FAILOVER_CHECKS: boolean.default(true),
  // Every watched host is read in full this often, whatever its monitors said (a safety net).
  STATE_RESYNC_S: seconds(60, 86_400),
  // Messages kept per WebSocket topic, so a client that reconnects resumes without a full.
  WS_REPLAY: z.coerce.number().int().min(0).max(1_000_000).default(1000),
  WS_HEARTBEAT_S: seconds(15, 3600),
  // A WebSocket client with more unsent data than this is disconnected (it does not read).
  WS_MAX_BUFFERED_BYTES: z.coerce.number().int().min(65_536).max(1_073_741_824).default(8_388_608),
  // Browsers open the WebSocket with a ticket from POST /v1/ws/tickets, valid this long, once.
  WS_TICKET_TTL_S: seconds(30, 3600),
  // Origins (scheme://host[:port], comma-separated) whose pages may call the API and open the
  // WebSocket without Kong (a deployer UI served elsewhere); empty: same origin only.
  CORS_ORIGINS: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .pipe(
      z.array(
        z
          .string()
          .regex(
            /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$|^https?:\/\/\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/,
            'each origin must be scheme://host[:port], without a path or a wildcard',
          ),
      ),
    )
    .default([]),
  COMPAT_HOST: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,253}$/, 'must be an inventory host name')
    .optional(),
});

export type Env = z.infer<typeof schema>;

/** The variable names routeplane reads: deployment files are checked against this list. */
export const CONFIG_ENV_VARS: readonly string[] = Object.keys(schema.shape);

export interface Config {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  dataDir: string;
  inventoryPath: string;
  playbooksDir: string;
  catalogDir: string;
  apiTokens: string | undefined;
  apiTokensFile: string | undefined;
  /** token: bearer tokens of our own; kong: consumer headers, trusted only with the gateway secret. */
  authMode: Env['AUTH_MODE'];
  /** Set exactly when authMode is kong. */
  gatewaySecret: string | undefined;
  vaultPasswordFile: string | undefined;
  vaultPassword: string | undefined;
  logLevel: Env['LOG_LEVEL'];
  runTimeoutMs: number;
  runCancelGraceMs: number;
  maxConcurrentRuns: number;
  runLogMaxBytes: number;
  /** Days a finished run is kept; 0: forever. */
  runRetentionDays: number;
  shutdownGraceMs: number;
  allowLocalWrites: boolean;
  ansiblePlaybook: string;
  /** The ansible-inventory that reads INVENTORY: Ansible's own parser decides what the fleet is. */
  ansibleInventory: string;
  /** A host's state gathered this recently is served as is, even to ?refresh=true. */
  refreshMinIntervalMs: number;
  /** Items one write may create after group expansion (hosts x items). */
  maxBatchItems: number;
  bodyLimit: string;
  validateResponses: boolean;
  routeProto: number;
  routeWaitDefaultMs: number;
  reconcileRetryBaseMs: number;
  reconcileRetryMaxMs: number;
  schedulerMaxSleepMs: number;
  claimMaxHosts: number;
  /** 0: periodic convergence off. */
  convergeIntervalMs: number;
  repairDrift: boolean;
  removeRoutesOnShutdown: boolean;
  runnerMode: Env['RUNNER'];
  /** 0: a run's masters close when it ends. */
  sshMasterIdleMs: number;
  /** How long an unconfirmed firewall apply lives on its host before it is reverted. */
  firewallConfirmS: number;
  /** ansible_python_interpreter for hosts whose inventory sets none. */
  hostPython: string;
  /** undefined: no metrics listener. */
  metricsPort: number | undefined;
  metricsHost: string;
  compatHost: string | undefined;
  watchHosts: boolean;
  failoverChecks: boolean;
  stateResyncMs: number;
  wsReplay: number;
  wsHeartbeatMs: number;
  wsMaxBufferedBytes: number;
  wsTicketTtlMs: number;
  corsOrigins: string[];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * In kong mode the consumer headers are believed only next to this secret, so it must exist
 * and be long; outside kong mode a secret is a sign of a half-done deployment, so it stops.
 */
function gatewaySecretOf(e: Env): string | undefined {
  const fail = (why: string) => new ConfigError(`invalid configuration: ${why}`);
  if (e.AUTH_MODE !== 'kong') {
    if (e.GATEWAY_SECRET || e.GATEWAY_SECRET_FILE) {
      throw fail('GATEWAY_SECRET and GATEWAY_SECRET_FILE are only used with AUTH_MODE=kong');
    }
    return undefined;
  }
  if (e.GATEWAY_SECRET && e.GATEWAY_SECRET_FILE) {
    throw fail('set GATEWAY_SECRET_FILE or GATEWAY_SECRET, not both');
  }
  let secret = e.GATEWAY_SECRET;
  let source = 'GATEWAY_SECRET';
  if (e.GATEWAY_SECRET_FILE) {
    source = 'GATEWAY_SECRET_FILE';
    try {
      secret = readFileSync(path.resolve(e.GATEWAY_SECRET_FILE), 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw fail(`GATEWAY_SECRET_FILE: cannot read ${e.GATEWAY_SECRET_FILE} (${code})`);
    }
  }
  if (!secret) throw fail('AUTH_MODE=kong needs GATEWAY_SECRET_FILE or GATEWAY_SECRET');
  if (secret.length < 32 || /\s/.test(secret)) {
    throw fail(`${source}: the gateway secret must be 32 or more characters without whitespace`);
  }
  return secret;
}

/** Reads and validates the environment once; a bad value names the variable and why. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means "unset", as shells and compose files commonly produce them.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ''));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${issues.join('; ')}`);
  }
  const e = parsed.data;
  if (e.VAULT_PASSWORD_FILE && e.VAULT_PASSWORD) {
    throw new ConfigError(
      'invalid configuration: set VAULT_PASSWORD_FILE or VAULT_PASSWORD, not both',
    );
  }
  const gatewaySecret = gatewaySecretOf(e);
  if (e.API_TOKENS) {
    // Parsed here too so a malformed list stops start-up like any other bad value (exit 2).
    try {
      TokenRegistry.fromPlain(e.API_TOKENS);
    } catch (err) {
      throw new ConfigError(`invalid configuration: ${(err as Error).message}`);
    }
  }
  const paths = {
    inventoryPath: path.resolve(e.INVENTORY),
    playbooksDir: path.resolve(e.PLAYBOOKS_DIR),
    catalogDir: path.resolve(e.CATALOG_DIR),
    apiTokensFile: e.API_TOKENS_FILE ? path.resolve(e.API_TOKENS_FILE) : undefined,
    vaultPasswordFile: e.VAULT_PASSWORD_FILE ? path.resolve(e.VAULT_PASSWORD_FILE) : undefined,
  };
  try {
    checkConfiguredPaths(paths);
  } catch (err) {
    throw new ConfigError(`invalid configuration: ${(err as Error).message}`);
  }
  return {
    ...paths,
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir: path.resolve(e.DATA_DIR),
    apiTokens: e.API_TOKENS,
    authMode: e.AUTH_MODE,
    gatewaySecret,
    vaultPassword: e.VAULT_PASSWORD,
    logLevel: e.LOG_LEVEL,
    runTimeoutMs: e.RUN_TIMEOUT_S * 1000,
    runCancelGraceMs: e.RUN_CANCEL_GRACE_S * 1000,
    maxConcurrentRuns: e.MAX_CONCURRENT_RUNS,
    runLogMaxBytes: e.RUN_LOG_MAX_BYTES,
    runRetentionDays: e.RUN_RETENTION_DAYS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_S * 1000,
    allowLocalWrites: e.ALLOW_LOCAL_WRITES,
    ansiblePlaybook: e.ANSIBLE_PLAYBOOK,
    ansibleInventory: e.ANSIBLE_INVENTORY,
    refreshMinIntervalMs: e.REFRESH_MIN_INTERVAL_S * 1000,
    maxBatchItems: e.MAX_BATCH_ITEMS,
    bodyLimit: e.BODY_LIMIT,
    validateResponses: e.VALIDATE_RESPONSES,
    routeProto: e.ROUTE_PROTO,
    routeWaitDefaultMs: e.ROUTE_WAIT_S * 1000,
    reconcileRetryBaseMs: e.RECONCILE_RETRY_BASE_S * 1000,
    reconcileRetryMaxMs: e.RECONCILE_RETRY_MAX_S * 1000,
    schedulerMaxSleepMs: e.SCHEDULER_MAX_SLEEP_S * 1000,
    claimMaxHosts: e.CLAIM_MAX_HOSTS,
    convergeIntervalMs: Math.round(e.CONVERGE_INTERVAL_S * 1000),
    repairDrift: e.REPAIR_DRIFT,
    removeRoutesOnShutdown: e.REMOVE_ROUTES_ON_SHUTDOWN,
    runnerMode: e.RUNNER,
    sshMasterIdleMs: e.SSH_MASTER_IDLE_S * 1000,
    firewallConfirmS: e.FIREWALL_CONFIRM_S,
    hostPython: e.HOST_PYTHON,
    metricsPort: e.METRICS_PORT,
    metricsHost: e.METRICS_HOST,
    compatHost: e.COMPAT_HOST,
    watchHosts: e.WATCH_HOSTS,
    failoverChecks: e.FAILOVER_CHECKS,
    stateResyncMs: e.STATE_RESYNC_S * 1000,
    wsReplay: e.WS_REPLAY,
    wsHeartbeatMs: e.WS_HEARTBEAT_S * 1000,
    wsMaxBufferedBytes: e.WS_MAX_BUFFERED_BYTES,
    wsTicketTtlMs: e.WS_TICKET_TTL_S * 1000,
    corsOrigins: e.CORS_ORIGINS,
  };
}
