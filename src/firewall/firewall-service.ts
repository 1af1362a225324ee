import { randomUUID } from 'node:crypto';
import type { Actor } from '../auth/roles.ts';
import type { Config } from '../config.ts';
import type { HostState } from '../hosts/host-state.ts';
import type { InventorySource } from '../hosts/inventory-source.ts';
import type { Inventory } from '../hosts/inventory.ts';
import { ApplyFailedError, ConflictError, NotFoundError } from '../http/errors.ts';
import { writeTargets } from '../hosts/write-targets.ts';
import { LifecycleActions } from '../lifecycle/lifecycle-actions.ts';
import { rescheduledStatus, scheduledStatus, type Schedule } from '../lifecycle/status.ts';
import type { Reconciler, Settlement } from '../reconciler/reconciler.ts';
import { checkSchedule, parseSchedule } from '../routes/route-input.ts';
import { LOST, retryLostRaces, won } from '../shared/retry-races.ts';
import type { FirewallStore, NewRule, RuleFilter } from './firewall-store.ts';
import { cutsManagement, type Management } from './management-guard.ts';
import { identityOf, parseRuleSpec, type RuleInput } from './rule-input.ts';
import type { FirewallRule, RuleSpec } from './types.ts';

/** Whether a host's inventory says routeplane manages its firewall, with or without rules. */
export function managedByInventory(inv: Inventory, host: string): boolean {
  const v = inv.hosts.get(host)?.vars.routeplane_firewall_managed;
  return v === true || v === 'true' || v === 'yes';
}

/** Changes PATCH may make; `null` clears a field. */
export interface RulePatch {
  create_at?: string | null;
  delete_at?: string | null;
  comment?: string | null;
}

export interface CreatedRule {
  rule: FirewallRule;
  outcome: 'created' | 'existing';
}

interface PlannedRule {
  spec: RuleSpec;
  schedule: Schedule;
  identity: string;
  comment: string | null;
  routeId: string | null;
}

export interface AppliedRules {
  value: FirewallRule[];
  settlement: Settlement;
}

type ServiceConfig = Pick<Config, 'maxBatchItems' | 'allowLocalWrites'>;

/** Firewall rules: creation, lifecycle, release of a host, and waiting for its table. */
export class FirewallService {
  private scheduleChanged: () => void = () => undefined;
  private readonly lifecycle: LifecycleActions<FirewallRule>;

  constructor(
    private readonly config: ServiceConfig,
    private readonly store: FirewallStore,
    private readonly inventory: InventorySource,
    private readonly reconciler: Reconciler,
    /** Who manages a host and on which SSH port (management-guard.ts). */
    private readonly managementOf: (host: string) => Promise<Management>,
    /** A host's last gathered state, or a new gather (HostsService.get). */
    private readonly hostState: (
      host: string,
      refresh: boolean,
      actor: Actor,
    ) => Promise<{ state: HostState }>,
    /**
     * The rule with the sets it names replaced by their elements, or a 400 for an unknown
     * set or zone (SetService.resolve).
     */
    private readonly resolveSets: (
      spec: RuleSpec,
      base: string,
      inv: Inventory,
    ) => Promise<RuleSpec>,
  ) {
    this.lifecycle = new LifecycleActions<FirewallRule>(store, 'Rule', 'rule_id');
  }

  onScheduleChange(fn: () => void): void {
    this.scheduleChanged = fn;
  }

  private async knownHost(host: string, field: string, writing: boolean): Promise<void> {
    const found = (await this.inventory.current()).hosts.get(host);
    if (!found) throw new NotFoundError(`${field}: host '${host}' is not in the inventory`);
    if (writing && found.local && !this.config.allowLocalWrites) {
      throw new ConflictError(
        `${field}: host '${host}' is the controller itself (read-only unless ALLOW_LOCAL_WRITES)`,
      );
    }
  }

  /**
   * The rules a request asks for, checked as create checks them (a 400 naming the field, a
   * 409 for a rule that would cut management) and nothing stored: a route checks its
   * openings with it before the route itself is stored.
   */
  async plan(
    inputs: { input: RuleInput; base: string; routeId?: string }[],
  ): Promise<PlannedRule[]> {
    const inv = await this.inventory.current();
    const targets = writeTargets(inputs, inv, this.config, {
      objects: 'rules',
      managed: 'its firewall',
    });
    const now = new Date();
    const planned: PlannedRule[] = [];
    const management = new Map<string, Management>();
    for (const [i, { input, base, routeId = null }] of inputs.entries()) {
      const hosts = targets[i]!;
      const schedule = parseSchedule(input, base);
      checkSchedule(schedule, now, base);
      for (const host of hosts) {
        const spec = parseRuleSpec({ ...input, host }, base);
        const resolved = await this.resolveSets(spec, base, inv);
        if (!management.has(host)) management.set(host, await this.managementOf(host));
        const cut = cutsManagement(resolved, management.get(host)!);
        if (cut) {
          throw new ConflictError(`${base}: refused on ${host}: ${cut}`, {
            host,
            management_sources: management.get(host)!.sources,
          });
        }
        planned.push({
          spec,
          schedule,
          identity: identityOf(spec, routeId),
          comment: input.comment ?? null,
          routeId,
        });
      }
    }
    return planned;
  }

  /**
   * Creates rules; an identical live rule (every field but comment and schedule) is answered
   * as it is. All or none: one invalid item rejects the whole request.
   */
  async create(
    inputs: { input: RuleInput; base: string; routeId?: string }[],
    actor: Actor,
  ): Promise<CreatedRule[]> {
    const planned = await this.plan(inputs);
    const now = new Date();
    return retryLostRaces('a rule of this request', async () => {
      const existing = await this.store.findLive(planned.map((p) => p.identity));
      const fresh = new Map<string, NewRule>();
      for (const p of planned) {
        if (existing.has(p.identity) || fresh.has(p.identity)) continue;
        fresh.set(p.identity, {
          id: randomUUID(),
          spec: p.spec,
          identity: p.identity,
          comment: p.comment,
          routeId: p.routeId,
          createAt: p.schedule.createAt,
          deleteAt: p.schedule.deleteAt,
          status: scheduledStatus(p.schedule, now),
          actor: actor.name,
        });
      }
      let inserted: FirewallRule[];
      try {
        inserted = await this.store.insert([...fresh.values()]);
      } catch (err) {
        // A concurrent request created one of these identities: read again and answer that.
        if ((err as { code?: string }).code === '23505') return LOST;
        throw err;
      }
      if (inserted.some((r) => r.createAt || r.deleteAt)) this.scheduleChanged();
      const byId = new Map(inserted.map((r) => [r.id, r]));
      return won(
        planned.map((p): CreatedRule => {
          const made = fresh.get(p.identity);
          return made
            ? { rule: byId.get(made.id)!, outcome: 'created' }
            : { rule: existing.get(p.identity)!, outcome: 'existing' };
        }),
      );
    });
  }

  history(f: RuleFilter) {
    return this.store.history(f);
  }

  /** Changes a live rule's comment or schedule; its other fields are its identity. */
  async patch(id: string, patch: RulePatch, actor: Actor): Promise<FirewallRule> {
    const rule = await this.lifecycle.live(id, 'changed');
    const now = new Date();
    const schedule = {
      createAt:
        patch.create_at === undefined ? rule.createAt : parseSchedule(patch, '/body').createAt,
      deleteAt:
        patch.delete_at === undefined ? rule.deleteAt : parseSchedule(patch, '/body').deleteAt,
    };
    const rescheduled = patch.create_at !== undefined || patch.delete_at !== undefined;
    if (rescheduled) checkSchedule(schedule, now, '/body');
    const status = rescheduled ? rescheduledStatus(rule.status, schedule, now) : rule.status;
    const changed = await this.store.reschedule(
      id,
      rule.status,
      {
        ...(patch.comment !== undefined ? { comment: patch.comment } : {}),
        ...(rescheduled ? { create_at: schedule.createAt, delete_at: schedule.deleteAt } : {}),
      },
      status,
      actor.name,
    );
    if (!changed) {
      throw new ConflictError(`Rule ${id} changed while this request ran; send it again`, {
        rule_id: id,
      });
    }
    if (rescheduled) this.scheduleChanged();
    return changed;
  }

  get(id: string): Promise<FirewallRule> {
    return this.lifecycle.get(id);
  }

  list(f: RuleFilter) {
    return this.store.list(f);
  }

  async events(id: string) {
    await this.lifecycle.get(id);
    return this.store.events(id);
  }

  delete(id: string, actor: Actor): Promise<FirewallRule> {
    return this.lifecycle.perform(id, 'delete', actor.name);
  }

  pause(id: string, actor: Actor): Promise<FirewallRule> {
    return this.lifecycle.perform(id, 'pause', actor.name);
  }

  resume(id: string, actor: Actor): Promise<FirewallRule> {
    return this.lifecycle.perform(id, 'resume', actor.name);
  }

  /**
   * Hands a host's firewall back: routeplane's table is removed by the next apply, and
   * nothing else. Refused while the host has live rules.
   */
  async release(host: string, ms: number): Promise<Settlement> {
    await this.knownHost(host, '/path/host', true);
    const inv = await this.inventory.current();
    if (managedByInventory(inv, host)) {
      throw new ConflictError(
        `Host '${host}' is managed by its inventory (routeplane_firewall_managed); remove that first`,
        { host },
      );
    }
    if (!(await this.store.release(host))) {
      const live = await this.store.liveCount(host);
      throw new ConflictError(
        `Host '${host}' has ${live} live firewall rule(s); delete them before releasing it`,
        { host, live_rules: live },
      );
    }
    const settlement = await this.reconciler.waitForKernel([host], ms);
    const failed = settlement.settled ? await this.store.lastFailure(host) : null;
    if (failed) {
      throw new ApplyFailedError(`removing routeplane's table failed: ${failed.error}`, {
        host,
        run_id: failed.runId,
      });
    }
    return settlement;
  }

  /** The host's firewall as the last gather (or a new one) read it. */
  async hostFirewall(host: string, refresh: boolean, actor: Actor) {
    const { state } = await this.hostState(host, refresh, actor);
    const managed = (await this.store.managed([host])).get(host) === true;
    const fw = state.firewall ?? null;
    const rules = (fw?.table ?? []).flatMap((item) => {
      const rule = item.rule as { chain?: string; handle?: number; comment?: string } | undefined;
      if (!rule) return [];
      const id = /^rp:([0-9a-f-]{36})$/.exec(rule.comment ?? '')?.[1] ?? null;
      return [{ chain: rule.chain ?? '', handle: rule.handle ?? null, rule_id: id }];
    });
    return {
      host,
      collected_at: state.collectedAt.toISOString(),
      managed,
      available: fw?.available ?? false,
      present: fw?.table != null,
      rules,
      table: fw?.table ?? null,
      ruleset: fw?.ruleset ?? null,
      error: fw ? fw.error : 'not gathered since routeplane read firewalls: refresh',
    };
  }

  /** Waits up to `ms` for the runs carrying these rules' changes, then reads them again. */
  async waitForKernel(rules: FirewallRule[], ms: number): Promise<AppliedRules> {
    const hosts = new Set(rules.filter((r) => r.sync.state === 'applying').map((r) => r.host));
    const settlement = await this.reconciler.waitForKernel(hosts, ms);
    return { value: await this.store.getMany(rules.map((r) => r.id)), settlement };
  }
}
