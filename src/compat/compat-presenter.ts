import type { KernelRoute } from '../hosts/host-state.ts';
import type { Route } from '../routes/types.ts';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function presentDatabaseRoute(r: Route) {
  return {
    to: r.to,
    via: r.via,
    dev: r.dev,
    create_at: iso(r.createAt ?? r.createdAt),
    delete_at: iso(r.deleteAt),
    active: r.status === 'active',
    status: r.status,
  };
}

export function presentDeletedRoute(r: Route) {
  return {
    id: r.id,
    to: r.to,
    via: r.via,
    dev: r.dev,
    create_at: iso(r.createAt ?? r.createdAt),
    delete_at: iso(r.deleteAt),
    removed_at: iso(r.removedAt),
    status: r.status,
  };
}

/** A kernel route as `ip route` prints it (host routes without their length, `default`). */
export function routeLine(r: KernelRoute): string {
  const dst =
    r.dst === '0.0.0.0/0' || r.dst === '::/0'
      ? 'default'
      : r.dst.replace(family(r) === 'inet' ? /\/32$/ : /\/128$/, '');
  const parts = [r.type !== 'unicast' ? `${r.type} ${dst}` : dst];
  if (r.gateway) parts.push('via', r.gateway);
  if (r.dev) parts.push('dev', r.dev);
  if (r.protocol && r.protocol !== 'boot') parts.push('proto', r.protocol);
  if (r.scope && r.scope !== 'global' && r.scope !== 'universe') parts.push('scope', r.scope);
  if (r.prefsrc) parts.push('src', r.prefsrc);
  if (r.metric !== null) parts.push('metric', String(r.metric));
  parts.push(...r.flags);
  return parts.join(' ').trim();
}

const family = (r: KernelRoute) => r.family;
