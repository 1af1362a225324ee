import type { Response } from 'express';
import type { Schemas } from '../http/api.ts';
import { ApplyFailedError } from '../http/errors.ts';
import { answerOne, presentCarried, sendPending, syncCounts } from '../http/kernel-answer.ts';
import type { OperationRequest, Operations } from '../http/operations.ts';
import { actorOf } from '../http/security.ts';
import type { LifecycleStatus } from '../lifecycle/status.ts';
import { presentRule } from './firewall-presenter.ts';
import type { FirewallPreview } from './firewall-preview.ts';
import type { FirewallService, RulePatch } from './firewall-service.ts';
import type { RuleFilter } from './firewall-store.ts';
import type { RuleInput } from './rule-input.ts';
import type { FirewallRule } from './types.ts';

type FirewallOperations = Pick<
  Operations,
  | 'listFirewallRules'
  | 'createFirewallRules'
  | 'getFirewallRule'
  | 'deleteFirewallRule'
  | 'pauseFirewallRule'
  | 'resumeFirewallRule'
  | 'listFirewallRuleEvents'
  | 'releaseHostFirewall'
  | 'getHostFirewall'
  | 'listFirewallRuleHistory'
  | 'updateFirewallRule'
  | 'previewHostFirewall'
>;

/** A list's filter and page from its query (the contract has checked the values). */
function filterOf(req: OperationRequest): RuleFilter {
  const q = req.query as Record<string, string | undefined>;
  return {
    host: q.host,
    routeId: q.route_id,
    status: q.status as LifecycleStatus | undefined,
    limit: Number(q.limit ?? 100),
    offset: Number(q.offset ?? 0),
  };
}

const RULE_ANSWERS = {
  present: presentRule,
  failure: (rule: FirewallRule): ApplyFailedError =>
    new ApplyFailedError(rule.sync.error ?? 'the apply run failed', {
      host: rule.host,
      rule_id: rule.id,
      run_id: rule.sync.lastRunId,
    }),
};

export function firewallHandlers(
  rules: FirewallService,
  preview: FirewallPreview,
  defaultWaitMs: number,
): FirewallOperations {
  const waitMs = (req: OperationRequest) =>
    req.query.wait === undefined ? defaultWaitMs : Number(req.query.wait) * 1000;

  /** Answers a write of one rule once its run has ended, or 202 while it is still going. */
  async function respondOne(req: OperationRequest, res: Response, rule: FirewallRule, ok: number) {
    const applied = await rules.waitForKernel([rule], waitMs(req));
    answerOne(res, RULE_ANSWERS, applied.value[0]!, applied.settlement, ok);
  }

  return {
    // GET /v1/firewall/rules
    listFirewallRules: async (req, res) => {
      const f = filterOf(req);
      const { items, total } = await rules.list(f);
      res.json({ items: items.map(presentRule), total, limit: f.limit, offset: f.offset });
    },

    // POST /v1/firewall/rules
    createFirewallRules: async (req, res) => {
      const body = req.body as RuleInput | RuleInput[];
      const batch = Array.isArray(body);
      const inputs = (batch ? body : [body]).map((input, i) => ({
        input,
        base: batch ? `/body/${i}` : '/body',
      }));
      const items = await rules.create(inputs, actorOf(req));
      if (!batch && items.length === 1) {
        const { rule, outcome } = items[0]!;
        return respondOne(req, res, rule, outcome === 'created' ? 201 : 200);
      }
      const applied = await rules.waitForKernel(
        items.map((i) => i.rule),
        waitMs(req),
      );
      const byId = new Map(applied.value.map((r) => [r.id, r]));
      const current = items.map((i) => ({ outcome: i.outcome, rule: byId.get(i.rule.id)! }));
      const counts = syncCounts(current.map((c) => c.rule));
      if (!applied.settlement.settled) sendPending(res, applied.settlement);
      else if (counts.failed === current.length) throw RULE_ANSWERS.failure(current[0]!.rule);
      else res.status(items.some((i) => i.outcome === 'created') ? 201 : 200);
      res.json({
        items: current.map((c) => ({
          outcome: c.outcome,
          rule: presentCarried(RULE_ANSWERS, c.rule, applied.settlement),
        })),
        counts,
      });
    },

    // GET /v1/firewall/rules/history
    listFirewallRuleHistory: async (req, res) => {
      const f = filterOf(req);
      const { items, total } = await rules.history(f);
      res.json({ items: items.map(presentRule), total, limit: f.limit, offset: f.offset });
    },

    // PATCH /v1/firewall/rules/{id}
    updateFirewallRule: async (req, res) => {
      const rule = await rules.patch(req.params.id!, req.body as RulePatch, actorOf(req));
      await respondOne(req, res, rule, 200);
    },

    // GET /v1/firewall/rules/{id}
    getFirewallRule: async (req, res) => {
      res.json(presentRule(await rules.get(req.params.id!)));
    },

    // DELETE /v1/firewall/rules/{id}
    deleteFirewallRule: async (req, res) => {
      await respondOne(req, res, await rules.delete(req.params.id!, actorOf(req)), 200);
    },

    // POST /v1/firewall/rules/{id}/pause
    pauseFirewallRule: async (req, res) => {
      await respondOne(req, res, await rules.pause(req.params.id!, actorOf(req)), 200);
    },

    // POST /v1/firewall/rules/{id}/resume
    resumeFirewallRule: async (req, res) => {
      await respondOne(req, res, await rules.resume(req.params.id!, actorOf(req)), 200);
    },

    // GET /v1/firewall/rules/{id}/events
    listFirewallRuleEvents: async (req, res) => {
      const events = await rules.events(req.params.id!);
      res.json({
        items: events.map((e) => ({
          id: e.id,
          at: e.at.toISOString(),
          actor: e.actor,
          action: e.action as Schemas['FirewallRuleEvent']['action'],
          from: e.from,
          to: e.to,
          detail: e.detail,
        })),
      });
    },

    // GET /v1/hosts/{host}/firewall
    getHostFirewall: async (req, res) => {
      const refresh = String(req.query.refresh) === 'true';
      res.json(await rules.hostFirewall(req.params.host!, refresh, actorOf(req)));
    },

    // POST /v1/hosts/{host}/firewall/preview
    previewHostFirewall: async (req, res) => {
      res.json(await preview.preview(req.params.host!, actorOf(req)));
    },

    // DELETE /v1/hosts/{host}/firewall
    releaseHostFirewall: async (req, res) => {
      const host = req.params.host!;
      const settlement = await rules.release(host, waitMs(req));
      if (!settlement.settled) sendPending(res, settlement, host);
      res.json({ host, released: true });
    },
  };
}
