import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { ValidationError, type FieldError } from '../http/errors.ts';
import { canonicalAddress } from '../routes/kernel-route.ts';
import { parsePrefix } from '../routes/route-input.ts';
import type { Chain, Protocol, RuleAction, RuleFamily, RuleSpec } from './types.ts';

/** A rule as a request states it (snake_case like the API), after the contract's checks. */
export interface RuleInput {
  host: string;
  chain: Chain;
  family?: RuleFamily;
  protocol?: Protocol;
  src?: string[];
  dst?: string[];
  sport?: string[];
  dport?: string[];
  iif?: string | null;
  oif?: string | null;
  action: RuleAction;
  to?: { address: string; port?: number | null } | null;
  priority?: number;
  comment?: string | null;
  create_at?: string | null;
  delete_at?: string | null;
}

const NAT_CHAINS: readonly Chain[] = ['prerouting', 'postrouting'];

/** A reference to a named set (`@blocklist`) or to a zone's own networks (`@zone:lan`). */
export type SetRef = { kind: 'set'; name: string } | { kind: 'zone'; name: string };

const SET_REF = /^@([a-z][a-z0-9_]{0,30})$/;
const ZONE_REF = /^@zone:([A-Za-z0-9_]{1,32})$/;

/** The reference a rule's list holds, or null when it lists values. */
export function refOf(values: readonly string[]): SetRef | null {
  const first = values[0];
  if (values.length !== 1 || !first?.startsWith('@')) return null;
  const zone = ZONE_REF.exec(first);
  if (zone) return { kind: 'zone', name: zone[1]! };
  const set = SET_REF.exec(first);
  return set ? { kind: 'set', name: set[1]! } : null;
}

/**
 * A list that names a set: the reference alone, well formed, and a zone only where addresses
 * go. Null when the list holds values, not a reference.
 */
function reference(
  values: string[],
  field: string,
  addresses: boolean,
  errors: FieldError[],
): string[] | null {
  if (!values.some((v) => v.startsWith('@'))) return null;
  const ref = refOf(values);
  if (!ref) {
    errors.push({
      field,
      message:
        values.length === 1
          ? `'${values[0]}' is not a set reference (@name: a-z, 0-9, _; or @zone:NAME)`
          : 'a set reference stands alone: list values or name one set',
    });
  } else if (ref.kind === 'zone' && !addresses) {
    errors.push({ field, message: 'a zone holds addresses, not ports' });
  }
  return values;
}

/** A port or a range, checked beyond the contract's pattern: 0 < low <= high <= 65535. */
export function parsePort(value: string, field: string, errors: FieldError[]): string {
  const [low, high = low] = value.split('-').map(Number) as [number, number?];
  if (!(low >= 1 && high! <= 65535 && low <= high!)) {
    errors.push({ field, message: `'${value}' is not a port (1-65535) or a range low-high` });
  }
  return low === high ? String(low) : `${low}-${high}`;
}

function prefixes(
  values: string[],
  family: RuleFamily,
  field: string,
  errors: FieldError[],
): string[] {
  const ref = reference(values, field, true, errors);
  if (ref) return ref;
  const out = new Set<string>();
  values.forEach((value, i) => {
    try {
      const p = parsePrefix(value, `${field}/${i}`);
      if (family === 'ip' && p.family === 6) {
        errors.push({ field: `${field}/${i}`, message: `'${value}' is IPv6 in an ip (IPv4) rule` });
      } else if (family === 'ip6' && p.family === 4) {
        errors.push({ field: `${field}/${i}`, message: `'${value}' is IPv4 in an ip6 rule` });
      } else out.add(p.to);
    } catch (err) {
      if (err instanceof ValidationError) errors.push(...err.fields);
      else throw err;
    }
  });
  return [...out].sort();
}

/**
 * The rule a request asks for, canonical and complete, or a 400 naming every field that is
 * wrong and why: ports without tcp or udp, NAT in a chain that cannot hold it, an address of
 * the other family, a target where the action takes none. `base` is the rule's JSON pointer.
 */
export function parseRuleSpec(input: RuleInput, base: string): RuleSpec {
  const errors: FieldError[] = [];
  const family = input.family ?? 'inet';
  const protocol = input.protocol ?? 'any';
  const { chain, action } = input;
  const ported = protocol === 'tcp' || protocol === 'udp';
  for (const key of ['sport', 'dport'] as const) {
    if ((input[key]?.length ?? 0) > 0 && !ported) {
      errors.push({
        field: `${base}/${key}`,
        message: `ports need protocol tcp or udp (this rule's protocol is ${protocol})`,
      });
    }
  }
  if (protocol === 'icmp' && family === 'ip6') {
    errors.push({ field: `${base}/protocol`, message: 'icmp in an ip6 rule: use icmpv6' });
  }
  if (protocol === 'icmpv6' && family === 'ip') {
    errors.push({ field: `${base}/protocol`, message: 'icmpv6 in an ip (IPv4) rule: use icmp' });
  }
  if (action === 'dnat' && chain !== 'prerouting' && chain !== 'output') {
    errors.push({ field: `${base}/action`, message: 'dnat belongs in prerouting or output' });
  }
  if ((action === 'snat' || action === 'masquerade') && chain !== 'postrouting') {
    errors.push({ field: `${base}/action`, message: `${action} belongs in postrouting` });
  }
  if ((action === 'drop' || action === 'reject') && NAT_CHAINS.includes(chain)) {
    errors.push({
      field: `${base}/action`,
      message: `${action} does not belong in ${chain} (a NAT chain): filter in input or forward`,
    });
  }
  const src = prefixes(input.src ?? [], family, `${base}/src`, errors);
  const dst = prefixes(input.dst ?? [], family, `${base}/dst`, errors);
  let to: RuleSpec['match']['to'] = null;
  const nat = action === 'dnat' || action === 'snat';
  if (nat && !input.to) {
    errors.push({ field: `${base}/to`, message: `${action} needs a target address` });
  } else if (!nat && input.to) {
    errors.push({ field: `${base}/to`, message: `only dnat and snat take a target` });
  } else if (input.to) {
    let addr: ipaddr.IPv4 | ipaddr.IPv6 | null = null;
    try {
      addr = ipaddr.parse(input.to.address);
    } catch {
      errors.push({
        field: `${base}/to/address`,
        message: `'${input.to.address}' is not an IP address`,
      });
    }
    const v6 = addr?.kind() === 'ipv6';
    if (addr && ((family === 'ip' && v6) || (family === 'ip6' && !v6))) {
      errors.push({
        field: `${base}/to/address`,
        message: `'${input.to.address}' is not of the rule's family (${family})`,
      });
    }
    if (action === 'snat' && input.to.port) {
      errors.push({ field: `${base}/to/port`, message: 'snat takes an address, not a port' });
    }
    if (input.to.port && !ported) {
      errors.push({ field: `${base}/to/port`, message: 'a target port needs protocol tcp or udp' });
    }
    if (addr) to = { address: canonicalAddress(addr), port: input.to.port ?? null };
  }
  const ports = (key: 'sport' | 'dport') =>
    reference(input[key] ?? [], `${base}/${key}`, false, errors) ??
    (input[key] ?? []).map((p, i) => parsePort(p, `${base}/${key}/${i}`, errors));
  const sport = ports('sport');
  const dport = ports('dport');
  if (errors.length > 0) {
    throw new ValidationError(errors.map((e) => `${e.field}: ${e.message}`).join('; '), errors);
  }
  return {
    host: input.host,
    chain,
    family,
    protocol,
    match: {
      src,
      dst,
      sport: [...new Set(sport)].sort(),
      dport: [...new Set(dport)].sort(),
      iif: input.iif ?? null,
      oif: input.oif ?? null,
      to,
    },
    action,
    priority: input.priority ?? 100,
  };
}

/**
 * A rule's identity: every field but the comment and the schedule, and the route it opens
 * for (a route's opening is its own, never merged with a rule made by hand).
 */
export function identityOf(spec: RuleSpec, routeId: string | null = null): string {
  const { host, chain, family, protocol, match, action, priority } = spec;
  const fields = [host, chain, family, protocol, match, action, priority];
  const canonical = JSON.stringify(routeId ? [...fields, routeId] : fields);
  return createHash('sha256').update(canonical).digest('hex');
}
