import { InvalidArgumentError } from 'commander';
import type { RouteOpening } from './api-client.ts';

const PROTOCOLS: readonly RouteOpening['protocol'][] = ['tcp', 'udp', 'icmp', 'icmpv6', 'any'];

// The shapes of the contract's RouteOpening items: syntax only, the server judges the values
// (a port above 65535, a prefix with host bits, a set the host does not have).
const PORT = /^([0-9]{1,5}(-[0-9]{1,5})?|@[a-z][a-z0-9_]{0,30})$/;
const SOURCE = /^([0-9A-Fa-f.:]+(\/[0-9]{1,3})?|@[a-z][a-z0-9_]{0,30}|@zone:[A-Za-z0-9_]{1,32})$/;

export const ALLOW_SYNTAX = 'PROTOCOL[:PORTS][/from=SOURCES]';

function items(list: string, what: string, shape: RegExp, example: string): string[] {
  const values = list.split(',').map((v) => v.trim());
  for (const v of values) {
    if (v === '') throw new InvalidArgumentError(`an empty item in the ${what} '${list}'`);
    if (!shape.test(v)) throw new InvalidArgumentError(`'${v}' is not ${example}`);
  }
  return values;
}

/**
 * One `--allow`: `PROTOCOL[:PORTS][/from=SOURCES]`, PORTS and SOURCES comma-separated.
 * `tcp:443`, `tcp:8000-8080,9000`, `udp:53/from=10.0.0.0/8,192.0.2.0/24`, `any/from=@trusted`,
 * `icmp`. PROTOCOL is tcp, udp, icmp, icmpv6 or any; a port is N, LOW-HIGH or a port set
 * `@name`; a source is an address, a prefix, an address set `@name` or a zone `@zone:NAME`.
 */
export function parseAllowSpec(value: string): RouteOpening {
  const spec = value.trim();
  const at = spec.indexOf('/');
  const head = at < 0 ? spec : spec.slice(0, at);
  const tail = at < 0 ? null : spec.slice(at + 1);
  const colon = head.indexOf(':');
  const protocol = (colon < 0 ? head : head.slice(0, colon)).toLowerCase();
  const ports = colon < 0 ? null : head.slice(colon + 1);

  if (protocol === '') {
    throw new InvalidArgumentError(
      `expected ${ALLOW_SYNTAX}, starting with a protocol (${PROTOCOLS.join(', ')})`,
    );
  }
  if (!(PROTOCOLS as readonly string[]).includes(protocol)) {
    throw new InvalidArgumentError(
      `unknown protocol '${protocol}': expected ${PROTOCOLS.join(', ')}`,
    );
  }
  const opening: RouteOpening = {
    protocol: protocol as RouteOpening['protocol'],
    dport: [],
    src: [],
  };
  if (ports !== null) {
    if (ports === '') throw new InvalidArgumentError(`no ports after '${protocol}:'`);
    opening.dport = items(ports, 'ports', PORT, 'a port, a range LOW-HIGH or a port set @name');
  }
  if (tail !== null) {
    if (!tail.startsWith('from=')) {
      throw new InvalidArgumentError(`expected '/from=SOURCES' after '${head}', got '/${tail}'`);
    }
    const sources = tail.slice('from='.length);
    if (sources === '') throw new InvalidArgumentError("no sources after '/from='");
    opening.src = items(
      sources,
      'sources',
      SOURCE,
      'an address, a prefix, an address set @name or a zone @zone:NAME',
    );
  }
  return opening;
}

/** `--allow a --allow b`: each use adds one opening. */
export function collectAllow(value: string, previous: RouteOpening[] = []): RouteOpening[] {
  return [...previous, parseAllowSpec(value)];
}

/** An opening as `--allow` takes it: `tcp:443/from=10.0.0.0/8`. */
export function formatAllowSpec(o: Partial<RouteOpening>): string {
  const dport = o.dport ?? [];
  const src = o.src ?? [];
  return (
    (o.protocol ?? 'any') +
    (dport.length > 0 ? `:${dport.join(',')}` : '') +
    (src.length > 0 ? `/from=${src.join(',')}` : '')
  );
}
