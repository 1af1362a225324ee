import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isRole, type Actor, type Role } from './roles.ts';

interface TokenEntry {
  name: string;
  role: Role;
  digest: Buffer;
}

export function sha256(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

export class TokenConfigError extends Error {
  override name = 'TokenConfigError';
}

/**
 * Known bearer tokens, kept only as SHA-256 digests. Tokens are long random strings, so a fast
 * hash is enough and keeps the request path cheap (no KDF); lookup compares every digest in
 * constant time so timing says nothing about which entry, if any, matched.
 */
export class TokenRegistry {
  private readonly replacedListeners: (() => void)[] = [];

  private constructor(private entries: TokenEntry[]) {}

  /**
   * The tokens are now these (API_TOKENS_FILE re-read on SIGHUP): a removed token stops
   * working at once, for requests and for the WebSockets it opened (onReplaced).
   */
  replaceWith(other: TokenRegistry): void {
    this.entries = other.entries;
    for (const fn of this.replacedListeners) fn();
  }

  onReplaced(fn: () => void): void {
    this.replacedListeners.push(fn);
  }

  static empty(): TokenRegistry {
    return new TokenRegistry([]);
  }

  /** `API_TOKENS`: comma-separated `name:role:token` (development). */
  static fromPlain(spec: string, source = 'API_TOKENS'): TokenEntry[] {
    return spec
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((item, i) => {
        const [name, role, ...rest] = item.split(':');
        const token = rest.join(':');
        if (!name || !isRole(role) || token.length < 8) {
          throw new TokenConfigError(
            `${source}: entry ${i + 1} must be name:role:token with role viewer|operator|admin and a token of 8+ characters`,
          );
        }
        return { name, role, digest: sha256(token) };
      });
  }

  /** `API_TOKENS_FILE`: lines `name:role:sha256hex` (production; the file holds no secret). */
  static fromDigestFile(file: string): TokenEntry[] {
    const text = readFileSync(file, 'utf8');
    return text.split('\n').flatMap((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith('#')) return [];
      const [name, role, hex] = line.split(':');
      if (!name || !isRole(role) || !hex || !/^[0-9a-f]{64}$/i.test(hex)) {
        throw new TokenConfigError(
          `API_TOKENS_FILE ${file}: line ${i + 1} must be name:role:sha256hex (64 hex digits)`,
        );
      }
      return [{ name, role, digest: Buffer.from(hex, 'hex') }];
    });
  }

  static of(entries: TokenEntry[]): TokenRegistry {
    return new TokenRegistry(entries);
  }

  get size(): number {
    return this.entries.length;
  }

  verify(token: string): Actor | null {
    return this.verifyDigest(sha256(token));
  }

  /** The actor of a token known by its digest (a socket's, re-checked after a replace). */
  verifyDigest(digest: Buffer): Actor | null {
    let match: TokenEntry | null = null;
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.digest, digest) && !match) match = entry;
    }
    return match ? { name: match.name, role: match.role } : null;
  }
}

export type { TokenEntry };
