import path from 'node:path';
import { z } from 'zod';

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
  VAULT_PASSWORD_FILE: z.string().optional(),
  VAULT_PASSWORD: z.string().min(1).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  RUN_TIMEOUT_S: seconds(900, 86400),
  RUN_CANCEL_GRACE_S: seconds(5, 600),
  MAX_CONCURRENT_RUNS: z.coerce.number().int().min(1).max(256).default(4),
  RUN_LOG_MAX_BYTES: z.coerce.number().int().min(1024).max(16_777_216).default(262_144),
  SHUTDOWN_GRACE_S: seconds(30, 3600),
  ALLOW_LOCAL_WRITES: boolean.default(false),
  ANSIBLE_PLAYBOOK: z.string().min(1).default('ansible-playbook'),
  BODY_LIMIT: z
    .string()
    .regex(/^\d+(b|kb|mb)$/i, 'must look like 100kb or 1mb')
    .default('100kb'),
  VALIDATE_RESPONSES: boolean.default(false),
});

export type Env = z.infer<typeof schema>;

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
  vaultPasswordFile: string | undefined;
  vaultPassword: string | undefined;
  logLevel: Env['LOG_LEVEL'];
  runTimeoutMs: number;
  runCancelGraceMs: number;
  maxConcurrentRuns: number;
  runLogMaxBytes: number;
  shutdownGraceMs: number;
  allowLocalWrites: boolean;
  ansiblePlaybook: string;
  bodyLimit: string;
  validateResponses: boolean;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
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
  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir: path.resolve(e.DATA_DIR),
    inventoryPath: path.resolve(e.INVENTORY),
    playbooksDir: path.resolve(e.PLAYBOOKS_DIR),
    catalogDir: path.resolve(e.CATALOG_DIR),
    apiTokens: e.API_TOKENS,
    apiTokensFile: e.API_TOKENS_FILE,
    vaultPasswordFile: e.VAULT_PASSWORD_FILE ? path.resolve(e.VAULT_PASSWORD_FILE) : undefined,
    vaultPassword: e.VAULT_PASSWORD,
    logLevel: e.LOG_LEVEL,
    runTimeoutMs: e.RUN_TIMEOUT_S * 1000,
    runCancelGraceMs: e.RUN_CANCEL_GRACE_S * 1000,
    maxConcurrentRuns: e.MAX_CONCURRENT_RUNS,
    runLogMaxBytes: e.RUN_LOG_MAX_BYTES,
    shutdownGraceMs: e.SHUTDOWN_GRACE_S * 1000,
    allowLocalWrites: e.ALLOW_LOCAL_WRITES,
    ansiblePlaybook: e.ANSIBLE_PLAYBOOK,
    bodyLimit: e.BODY_LIMIT,
    validateResponses: e.VALIDATE_RESPONSES,
  };
}
