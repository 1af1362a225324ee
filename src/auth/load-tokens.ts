import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { generateToken, sha256, TokenRegistry } from './token-registry.ts';

/**
 * Tokens from API_TOKENS and API_TOKENS_FILE. With neither, a fresh install still needs a way
 * in: an admin token is generated once into DATA_DIR/admin.token (0600), never logged.
 */
export function loadTokens(
  config: Pick<Config, 'apiTokens' | 'apiTokensFile' | 'dataDir'>,
  logger: Logger,
): TokenRegistry {
  const entries = [
    ...(config.apiTokens ? TokenRegistry.fromPlain(config.apiTokens) : []),
    ...(config.apiTokensFile ? TokenRegistry.fromDigestFile(config.apiTokensFile) : []),
  ];
  if (entries.length > 0) return TokenRegistry.of(entries);
  const file = path.join(config.dataDir, 'admin.token');
  if (!existsSync(file)) writeFileSync(file, generateToken() + '\n', { mode: 0o600 });
  const token = readFileSync(file, 'utf8').trim();
  logger.warn(
    { event: 'auth.bootstrap_token', file },
    'no API_TOKENS or API_TOKENS_FILE: using the generated admin token stored in this file',
  );
  return TokenRegistry.of([{ name: 'admin', role: 'admin', digest: sha256(token) }]);
}
