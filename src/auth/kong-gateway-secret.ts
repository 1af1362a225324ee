import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/**
 * The secret Kong adds to every request it forwards (as `Authorization: Bearer <secret>`, see
 * kong/kong.yml). Only a request carrying it can vouch for a consumer. Comparing SHA-256
 * digests keeps the compare constant-time whatever length the caller presents.
 */
export class GatewaySecret {
  private readonly expected: Buffer;

  constructor(secret: string) {
    this.expected = digest(secret);
  }

  matches(presented: string | undefined): boolean {
    if (presented === undefined) return false;
    return timingSafeEqual(this.expected, digest(presented));
  }
}
