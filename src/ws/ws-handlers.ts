import { sha256 } from '../auth/token-registry.ts';
import { UpgradeRequiredError } from '../http/errors.ts';
import type { Operations } from '../http/operations.ts';
import { actorOf, bearerToken } from '../http/security.ts';
import type { WsTickets } from './ws-tickets.ts';

type LiveOperations = Pick<Operations, 'openLiveSocket' | 'createLiveSocketTicket'>;

export function wsHandlers(tickets: WsTickets, authMode: 'token' | 'kong'): LiveOperations {
  return {
    // GET /v1/ws without an upgrade: the upgrade itself never reaches Express (ws-server.ts).
    openLiveSocket: async () => {
      throw new UpgradeRequiredError('/v1/ws speaks WebSocket only');
    },

    // POST /v1/ws/tickets
    createLiveSocketTicket: async (req, res) => {
      // Behind Kong the bearer is the gateway's secret, not the consumer's: nothing to tie to.
      const token = authMode === 'token' ? bearerToken((n) => req.get(n)) : undefined;
      const t = await tickets.issue(actorOf(req), token ? sha256(token) : null);
      res.status(201).json({ ticket: t.ticket, expires_at: t.expiresAt.toISOString() });
    },
  };
}
