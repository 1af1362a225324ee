import type { Response } from 'express';
import { ApplyFailedError } from '../http/errors.ts';
import { sendPending } from '../http/kernel-answer.ts';
import type { OperationRequest, Operations } from '../http/operations.ts';
import { actorOf } from '../http/security.ts';
import type { SetApply, SetInput, SetService } from './set-service.ts';
import { presentSet } from './firewall-presenter.ts';
import type { FirewallSet } from './set-store.ts';

type SetOperations = Pick<
  Operations,
  | 'listFirewallSets'
  | 'createFirewallSet'
  | 'getFirewallSet'
  | 'deleteFirewallSet'
  | 'addFirewallSetElements'
  | 'removeFirewallSetElements'
  | 'listFirewallSetEvents'
>;

export function setHandlers(sets: SetService, defaultWaitMs: number): SetOperations {
  const waitMs = (req: OperationRequest) =>
    req.query.wait === undefined ? defaultWaitMs : Number(req.query.wait) * 1000;

  /**
   * Answers a write of a set once the runs carrying it to its managed hosts have ended: each
   * host's outcome in `apply`; 202 while a run goes on; 502 when every host failed.
   */
  async function answer(req: OperationRequest, res: Response, set: FirewallSet, ok: number) {
    const applied: SetApply = await sets.waitForKernel(set, waitMs(req));
    const hosts = applied.hosts.map((h) => ({
      host: h.host,
      state: !applied.settlement.settled
        ? ('applying' as const)
        : h.error
          ? ('failed' as const)
          : ('in_sync' as const),
      error: h.error,
      run_id: h.runId,
    }));
    const failed = hosts.filter((h) => h.state === 'failed');
    if (!applied.settlement.settled) sendPending(res, applied.settlement);
    else if (hosts.length > 0 && failed.length === hosts.length) {
      throw new ApplyFailedError(`set '${set.name}' was not applied: ${failed[0]!.error}`, {
        set_id: set.id,
        host: failed[0]!.host,
        run_id: failed[0]!.run_id,
      });
    } else res.status(ok);
    res.json({ ...presentSet(set), apply: { settled: applied.settlement.settled, hosts } });
  }

  return {
    // GET /v1/firewall/sets
    listFirewallSets: async (req, res) => {
      const q = req.query as { host?: string; target?: string };
      const items = await sets.list({ host: q.host, target: q.target });
      res.json({ items: items.map(presentSet) });
    },

    // POST /v1/firewall/sets
    createFirewallSet: async (req, res) => {
      const set = await sets.create(req.body as SetInput, actorOf(req));
      await answer(req, res, set, 201);
    },

    // GET /v1/firewall/sets/{id}
    getFirewallSet: async (req, res) => {
      res.json(presentSet(await sets.get(req.params.id!)));
    },

    // DELETE /v1/firewall/sets/{id}
    deleteFirewallSet: async (req, res) => {
      await answer(req, res, await sets.delete(req.params.id!, actorOf(req)), 200);
    },

    // POST /v1/firewall/sets/{id}/elements
    addFirewallSetElements: async (req, res) => {
      const { elements } = req.body as { elements: string[] };
      await answer(req, res, await sets.add(req.params.id!, elements, actorOf(req)), 200);
    },

    // DELETE /v1/firewall/sets/{id}/elements
    removeFirewallSetElements: async (req, res) => {
      const q = req.query as { element: string | string[] };
      const elements = Array.isArray(q.element) ? q.element : [q.element];
      await answer(req, res, await sets.remove(req.params.id!, elements, actorOf(req)), 200);
    },

    // GET /v1/firewall/sets/{id}/events
    listFirewallSetEvents: async (req, res) => {
      const events = await sets.events(req.params.id!);
      res.json({
        items: events.map((e) => ({
          id: e.id,
          at: e.at.toISOString(),
          actor: e.actor,
          action: e.action,
          elements: e.elements,
        })),
      });
    },
  };
}
