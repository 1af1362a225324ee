import type { Config } from '../config.ts';
import type { FirewallStore } from '../firewall/firewall-store.ts';
import type { FirewallRule } from '../firewall/types.ts';
import type { HostState } from '../hosts/host-state.ts';
import type { Logger } from '../logger.ts';
import type { HostWorkStore } from '../reconciler/host-work-store.ts';
import type { RoutesStore } from '../routes/routes-store.ts';
import { routeDrift, ruleDrift } from './drift.ts';
import { stableJson } from './stable-json.ts';

const DRIFT_ERROR = 'missing or altered on the host (seen by its watcher)';

/**
 * Compares each state a watcher reads with what the host should hold. Active objects believed
 * in sync that the host lost or altered are marked drifted (with an event); with REPAIR_DRIFT
 * the host is made due, and the reconciler's convergence run puts them back (and records the
 * repair). A host with an apply in flight is left to that run. A host whose addresses changed
 * and whose rules use zone sets is re-applied, so its zones follow its addresses.
 */
export class DriftResponder {
  private readonly addresses = new Map<string, string>();

  constructor(
    private readonly config: Pick<Config, 'repairDrift' | 'routeProto'>,
    private readonly routes: RoutesStore,
    private readonly firewall: FirewallStore,
    private readonly work: HostWorkStore,
    private readonly logger: Logger,
    private readonly wake: () => void,
  ) {}

  /** Returns whether it marked anything drifted (the caller re-publishes the host's objects). */
  async check(host: string, state: HostState): Promise<boolean> {
    const [routes, rules, managed, works] = await Promise.all([
      this.routes.liveOfHosts([host]),
      this.firewall.liveOfHosts([host]),
      this.firewall.managed([host]),
      this.work.states([host]),
    ]);
    const work = works.get(host);
    // A run holding the host, or one owed, reports on these objects itself.
    const inFlight = !!work && (work.runId !== null || work.desiredGen > work.appliedGen);
    const addressesNow = stableJson(state.addresses);
    const addressesBefore = this.addresses.get(host);
    this.addresses.set(host, addressesNow);
    const zoned =
      managed.get(host) === true && rules.some((r) => r.status === 'active' && usesZone(r));
    if (zoned && addressesBefore !== undefined && addressesBefore !== addressesNow && !inFlight) {
      this.logger.info(
        { event: 'live.zones_changed', host },
        'addresses changed: re-applying zones',
      );
      await this.work.markDue([host]);
      this.wake();
    }
    if (inFlight) return false;
    const routeItems = routeDrift(routes, state.routes, this.config.routeProto);
    const ruleItems = managed.get(host) ? ruleDrift(rules, state.firewall) : [];
    if (routeItems.length === 0 && ruleItems.length === 0) return false;
    const marked = [
      ...(await this.routes.markDrifted(routeItems, DRIFT_ERROR)),
      ...(await this.firewall.markDrifted(ruleItems, DRIFT_ERROR)),
    ];
    if (marked.length === 0) return false;
    this.logger.warn(
      {
        event: 'live.drift_detected',
        host,
        objects: marked.length,
        repair: this.config.repairDrift,
      },
      'objects missing or altered on a host',
    );
    if (this.config.repairDrift) {
      await this.work.markDue([host]);
      this.wake();
    }
    return true;
  }
}

/** Whether a rule names a zone set on either side (`@zone:NAME`). */
function usesZone(rule: Pick<FirewallRule, 'match'>): boolean {
  return [...rule.match.src, ...rule.match.dst].some((v) => v.startsWith('@zone:'));
}
