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
 * Whether a route to `to` (with `metric`) would become the host's longest-prefix match for
 * `address` in the main table: a longer prefix than the best containing one, or the same
 * prefix with a lower metric (the test the apply module makes against the live table). Never
 * gathered: any route but a default one that contains the address counts, as the module would
 * find a connected route at least.
 */
export function wouldCapture(
  to: string,
  metric: number,
  address: string,
  known: KernelRoute[] | null,
): boolean {
  if (!contains(to, address)) return false;
  if (known === null) return lengthOf(to) > 0;
  let best: { length: number; metric: number } | null = null;
  for (const r of known) {
    if (kernelTableId(r) !== MAIN_TABLE || r.type !== 'unicast' || !contains(r.dst, address)) {
      continue;
    }
    const candidate = { length: lengthOf(r.dst), metric: r.metric ?? 0 };
    if (
      !best ||
      candidate.length > best.length ||
      (candidate.length === best.length && candidate.metric < best.metric)
    ) {
      best = candidate;
    }
  }
  if (!best) return true;
  return lengthOf(to) > best.length || (lengthOf(to) === best.length && metric < best.metric);
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
    for (const p of forced) {
      const items = byItem.get(p.base) ?? [];
      items.push(p);
      byItem.set(p.base, items);
    }
    // Once per host, however many items of the request target it.
    const hosts = [...new Set(forced.map((p) => p.spec.host))];
    const [addresses, tables] = await Promise.all([
      this.facts.managementAddresses(hosts),
      Promise.all(hosts.map(async (h) => [h, await this.facts.knownRoutes(h)] as const)),
    ]);
    const known = new Map(tables);
    for (const [base, items] of byItem) {
      const captured: string[] = [];
      for (const p of items) {
        const address = addresses[p.spec.host];
        if (!address) break;
        if (!wouldCapture(p.spec.to, p.spec.metric, address, known.get(p.spec.host) ?? null)) break;
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
