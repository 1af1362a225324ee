import type { HostState } from '../hosts/host-state.ts';
import { tableRuleIds, isManaged } from './drift.ts';
import type { Objects } from './topic-log.ts';

/** A host's topic name. */
export const hostTopic = (host: string) => `hosts/${host}`;
export const HOSTS_PREFIX = 'hosts/';

/** What the `host` object of a host's topic says about watching it. */
export interface WatchInfo {
  state: 'connecting' | 'watching' | 'unreachable' | 'not_watched' | 'off';
  error: string | null;
  since: string;
}

/**
 * A host's kernel state as topic objects, one per link, address and route, keyed so a diff
 * names exactly what changed. When it was read is not an object: a re-read that found
 * nothing new sends nothing.
 */
export function stateObjects(state: HostState, routeProto: number): Objects {
  const out: Objects = {};
  for (const l of state.links) out[`link/${l.ifname}`] = l;
  for (const a of state.addresses) out[`address/${a.ifname}/${a.address}/${a.prefixlen}`] = a;
  for (const r of state.routes) {
    out[`route/${r.family}/${r.table}/${r.dst}/${r.metric ?? 0}`] = {
      ...r,
      managed: isManaged(r, routeProto),
    };
  }
  const fw = state.firewall;
  if (fw) {
    out.firewall = {
      available: fw.available,
      error: fw.error,
      table: fw.table !== null,
      rules: tableRuleIds(fw.table).size,
    };
  }
  return out;
}
