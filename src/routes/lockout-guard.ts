import ipaddr from 'ipaddr.js';
import type { Actor } from '../auth/roles.ts';
import { kernelTableId, type KernelRoute } from '../hosts/host-state.ts';
import { ConflictError, ForbiddenError } from '../http/errors.ts';
import { MAIN_TABLE } from './kernel-route.ts';
import type { PlannedRoute } from './route-plan.ts';

/** What the guard needs to know of each host: its management address and last known routes. */
export interface LockoutFacts {
  managementAddresses(hosts: string[]): Promise<Record<string, string>>;
  /** The host's main-table routes from its last gather, or null when never gathered. */
  knownRoutes(host: string): Promise<KernelRoute[] | null>;
}

function contains(prefix: string, address: string): boolean {
  const addr = ipaddr.parse(address);
  const [net, len] = ipaddr.parseCIDR(prefix);
  return addr.kind() === net.kind() && addr.match([net, len]);
}

const lengthOf = (prefix: string) => ipaddr.parseCIDR(prefix)[1];

/**
 * Whether a route to `to` would become the host's longest-prefix match for `address` (the same
 * test the apply module makes against the live table). Never gathered: any route but a default
 * one that contains the address counts, as the module would find a connected route at least.
 */
export function wouldCapture(to: string, address: string, known: KernelRoute[] | null): boolean {
  if (!contains(to, address)) return false;
  const best = (known ?? [])
    .filter((r) => kernelTableId(r) === MAIN_TABLE && r.type === 'unicast')
    .filter((r) => contains(r.dst, address))
    .reduce((max, r) => Math.max(max, lengthOf(r.dst)), known ? -1 : 0);
  return lengthOf(to) > best;
}

/**
 * `force` installs a route even where it captures the host's management address: an admin's
 * decision. A forced route that would capture it on every host it targets cuts routeplane off
 * from all of them, and is refused whoever asks.
 */
export class LockoutGuard {
  constructor(private readonly facts: LockoutFacts) {}

  async check(planned: PlannedRoute[], actor: Actor): Promise<void> {
    const forced = planned.filter((p) => p.spec.force);
    if (forced.length === 0) return;
    if (actor.role !== 'admin') {
      throw new ForbiddenError(
        `${forced[0]!.base}/force: installing a route over the management address needs the admin role`,
      );
    }
    const byItem = new Map<string, PlannedRoute[]>();
    for (const p of forced) byItem.set(p.base, [...(byItem.get(p.base) ?? []), p]);
    const hosts = [...new Set(forced.map((p) => p.spec.host))];
    const addresses = await this.facts.managementAddresses(hosts);
    for (const [base, items] of byItem) {
      const captured: string[] = [];
      for (const p of items) {
        const address = addresses[p.spec.host];
        if (!address) break;
        if (!wouldCapture(p.spec.to, address, await this.facts.knownRoutes(p.spec.host))) break;
        captured.push(`${p.spec.host} (${address})`);
      }
      if (captured.length === items.length) {
        throw new ConflictError(
          `${items[0]!.spec.to} would capture the management address of every host it targets: ${captured.join(', ')}; even force cannot install it`,
          { field: `${base}/to` },
        );
      }
    }
  }
}
