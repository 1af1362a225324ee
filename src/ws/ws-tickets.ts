import type { Knex } from 'knex';
import { generateToken, sha256 } from '../auth/token-registry.ts';
import { isRole, type Actor } from '../auth/roles.ts';

export interface Ticket {
  ticket: string;
  expiresAt: Date;
}

export interface Redeemed {
  actor: Actor;
  tokenDigest: Buffer | null;
}

/**
 * Short-lived, single-use tickets for opening a WebSocket from a browser, which cannot set an
 * Authorization header on the upgrade: the page asks for one with its token, then opens
 * `/v1/ws?ticket=...` within the TTL. Kept in the database (as digests) so a ticket issued by
 * one replica opens a socket on any.
 */
export class WsTickets {
  constructor(
    private readonly knex: Knex,
    private readonly ttlMs: number,
  ) {}

  async issue(actor: Actor, tokenDigest: Buffer | null): Promise<Ticket> {
    const ticket = generateToken();
    const expiresAt = new Date(Date.now() + this.ttlMs);
    await this.knex('ws_tickets').where('expires_at', '<', new Date()).delete();
    await this.knex('ws_tickets').insert({
      digest: sha256(ticket).toString('hex'),
      actor: actor.name,
      role: actor.role,
      token_digest: tokenDigest?.toString('hex') ?? null,
      expires_at: expiresAt,
    });
    return { ticket, expiresAt };
  }

  /** The ticket's actor, once: a ticket opens one socket, and none after it expired. */
  async redeem(ticket: string): Promise<Redeemed | null> {
    if (!/^[A-Za-z0-9_-]{20,100}$/.test(ticket)) return null;
    const rows = (await this.knex('ws_tickets')
      .where({ digest: sha256(ticket).toString('hex') })
      .andWhere('expires_at', '>', new Date())
      .delete()
      .returning(['actor', 'role', 'token_digest'])) as {
      actor: string;
      role: string;
      token_digest: string | null;
    }[];
    const row = rows[0];
    if (!row || !isRole(row.role)) return null;
    return {
      actor: { name: row.actor, role: row.role },
      tokenDigest: row.token_digest ? Buffer.from(row.token_digest, 'hex') : null,
    };
  }
}
