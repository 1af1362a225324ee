import { kernelTableId, type FirewallState, type KernelRoute } from '../hosts/host-state.ts';
import type { FirewallRule } from '../firewall/types.ts';
import { gatewaysInUse, type Route } from '../routes/types.ts';
import { kernelMetric, nexthopSet, sameNexthops, type Nexthop } from '../routes/kernel-route.ts';

export interface DriftItem {
  id: string;
  found: 'missing' | 'altered';
}

/**
 * What a desired route forwards by in the kernel: each gateway in use (two or more are one
 * multipath route, each path of weight 1), or none, on its dev when it names one.
 */
function desiredNexthops(d: Route): Nexthop[] {
  const gateways = gatewaysInUse(d);
  if (gateways.length === 0) return [{ gateway: null, dev: d.dev, weight: 1 }];
  return gateways.map((gateway) => ({ gateway, dev: d.dev, weight: 1 }));
}

/** Whether a kernel route was installed by routeplane (its protocol id). */
export function isManaged(r: Pick<KernelRoute, 'protocol'>, routeProto: number): boolean {
  return r.protocol === String(routeProto);
}

/**
 * Active routes believed in sync that the host's kernel no longer holds as asked: gone, or
 * present under routeplane's protocol with other forwarding: another gateway or device, other
 * paths of a multipath route (in any order they are the same), or multipath where one path was
 * asked (and the other way round). Only routeplane's own routes count: a route someone added
 * by hand is never drift.
 */
export function routeDrift(
  desired: Route[],
  kernel: KernelRoute[],
  routeProto: number,
): DriftItem[] {
  const installed = new Map<string, KernelRoute>();
  for (const r of kernel) {
    if (!isManaged(r, routeProto)) continue;
    const table = kernelTableId(r);
    const family = r.family === 'inet6' ? 6 : 4;
    installed.set(`${family}|${table}|${r.dst}|${kernelMetric(r.metric, family)}`, r);
  }
  const out: DriftItem[] = [];
  for (const d of desired) {
    if (d.status !== 'active' || d.sync.state !== 'in_sync') continue;
    const k = installed.get(`${d.family}|${d.table}|${d.to}|${kernelMetric(d.metric, d.family)}`);
    if (!k) out.push({ id: d.id, found: 'missing' });
    else if (!sameNexthops(desiredNexthops(d), nexthopSet(k))) {
      out.push({ id: d.id, found: 'altered' });
    }
  }
  return out;
}

/** The rule ids routeplane's table on the host carries (each rule's `rp:<id>` comment). */
export function tableRuleIds(table: FirewallState['table']): Set<string> {
  const ids = new Set<string>();
  for (const item of table ?? []) {
    const comment = (item as { rule?: { comment?: unknown } }).rule?.comment;
    if (typeof comment === 'string' && comment.startsWith('rp:')) ids.add(comment.slice(3));
  }
  return ids;
}

/**
 * Active rules believed in sync that routeplane's table on the host no longer carries (the
 * table flushed, deleted, or a rule removed by hand). Nothing is said for a host whose
 * firewall could not be read.
 */
export function ruleDrift(desired: FirewallRule[], firewall: FirewallState | null | undefined) {
  if (!firewall?.available || firewall.error) return [];
  const present = tableRuleIds(firewall.table);
  return desired
    .filter((r) => r.status === 'active' && r.sync.state === 'in_sync' && !present.has(r.id))
    .map((r): DriftItem => ({ id: r.id, found: 'missing' }));
}
