import ipaddr from 'ipaddr.js';
import type { RuleSpec } from './types.ts';

/** What the guard knows of a host: who manages it and on which SSH port. */
export interface Management {
  /** Management sources: the controller's address towards the host, and the inventory's. */
  sources: string[];
  sshPort: number;
}

// A zone's networks are the host's own, known only on the host at apply time: a rule on a
// zone is not judged here (the template's management accepts still come first).
function covers(prefixes: string[], address: string): boolean {
  if (prefixes.length === 0) return true;
  if (prefixes.some((p) => p.startsWith('@'))) return false;
  const addr = ipaddr.parse(address);
  return prefixes.some((p) => {
    const [net, len] = ipaddr.parseCIDR(p);
    return net.kind() === addr.kind() && addr.match(net, len);
  });
}

function includesPort(ports: string[], port: number): boolean {
  if (ports.length === 0) return true;
  if (ports.some((p) => p.startsWith('@'))) return false;
  return ports.some((p) => {
    const [low, high = low] = p.split('-').map(Number) as [number, number?];
    return low <= port && port <= high!;
  });
}

/**
 * Why a rule would cut routeplane off from its host, or null. The default template accepts
 * management first, so such a rule would not cut the controller today; it is refused anyway,
 * as the rule says what its author meant (a blocklist naming the controller, a redirect of
 * SSH), and a group template or another replica's address might not be covered. A rule
 * naming a set is judged with the set's elements in its match (the caller resolves them).
 */
export function cutsManagement(spec: RuleSpec, m: Management): string | null {
  const { chain, action, protocol, match } = spec;
  const tcp = protocol === 'tcp' || protocol === 'any';
  for (const source of m.sources) {
    if (chain === 'input' && (action === 'drop' || action === 'reject')) {
      if (covers(match.src, source) && tcp && includesPort(match.dport, m.sshPort)) {
        return `it would ${action} management traffic from ${source} (SSH on port ${m.sshPort})`;
      }
    }
    if (chain === 'output' && (action === 'drop' || action === 'reject')) {
      if (covers(match.dst, source) && tcp && includesPort(match.sport, m.sshPort)) {
        return `it would ${action} the host's SSH answers to ${source} (source port ${m.sshPort})`;
      }
    }
    if (chain === 'prerouting' && action === 'dnat') {
      if (covers(match.src, source) && tcp && includesPort(match.dport, m.sshPort)) {
        return `it would redirect SSH (port ${m.sshPort}) from the management source ${source}`;
      }
    }
  }
  return null;
}
