import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { collectAllow, formatAllowSpec, parseAllowSpec } from '../../../src/cli/allow-spec.ts';

describe('parseAllowSpec', () => {
  it('when a spec names a protocol and ports, then they become protocol and dport', () => {
    expect(parseAllowSpec('tcp:443')).toEqual({ protocol: 'tcp', dport: ['443'], src: [] });
    expect(parseAllowSpec('tcp:8000-8080,9000')).toEqual({
      protocol: 'tcp',
      dport: ['8000-8080', '9000'],
      src: [],
    });
    expect(parseAllowSpec('udp:@dns_ports')).toEqual({
      protocol: 'udp',
      dport: ['@dns_ports'],
      src: [],
    });
  });

  it('when a spec has /from=, then the sources (prefixes, IPv6, sets, zones) become src', () => {
    expect(parseAllowSpec('udp:53/from=10.0.0.0/8,192.0.2.1')).toEqual({
      protocol: 'udp',
      dport: ['53'],
      src: ['10.0.0.0/8', '192.0.2.1'],
    });
    expect(parseAllowSpec('tcp:22/from=2001:db8::/32')).toEqual({
      protocol: 'tcp',
      dport: ['22'],
      src: ['2001:db8::/32'],
    });
    expect(parseAllowSpec('any/from=@trusted').src).toEqual(['@trusted']);
    expect(parseAllowSpec('icmp/from=@zone:lan')).toEqual({
      protocol: 'icmp',
      dport: [],
      src: ['@zone:lan'],
    });
  });

  it('when a spec is only a protocol, then everything of that protocol is allowed', () => {
    expect(parseAllowSpec('any')).toEqual({ protocol: 'any', dport: [], src: [] });
    expect(parseAllowSpec(' ICMPv6 ')).toEqual({ protocol: 'icmpv6', dport: [], src: [] });
  });

  it('when the syntax is wrong, then the error says what was expected', () => {
    const cases: [string, RegExp][] = [
      ['', /starting with a protocol/],
      [':443', /starting with a protocol/],
      ['sctp:443', /unknown protocol 'sctp': expected tcp, udp, icmp, icmpv6, any/],
      ['tcp:', /no ports after 'tcp:'/],
      ['tcp:443,', /an empty item in the ports/],
      ['tcp:https', /'https' is not a port, a range LOW-HIGH or a port set @name/],
      ['tcp:1-2-3', /'1-2-3' is not a port/],
      ['tcp:443/10.0.0.0/8', /expected '\/from=SOURCES' after 'tcp:443', got '\/10.0.0.0\/8'/],
      ['tcp:443/from=', /no sources after '\/from='/],
      ['tcp/from=10.0.0.0/8,,192.0.2.1', /an empty item in the sources/],
      ['tcp/from=example.com', /'example.com' is not an address, a prefix/],
      ['any/from=@Bad', /'@Bad' is not an address/],
    ];
    for (const [spec, message] of cases) {
      expect(() => parseAllowSpec(spec), spec).toThrow(InvalidArgumentError);
      expect(() => parseAllowSpec(spec), spec).toThrow(message);
    }
  });
});

describe('collectAllow and formatAllowSpec', () => {
  it('when --allow is repeated, then each use adds one opening in order', () => {
    const first = collectAllow('tcp:443');
    expect(collectAllow('udp:53/from=10.0.0.0/8', first)).toEqual([
      { protocol: 'tcp', dport: ['443'], src: [] },
      { protocol: 'udp', dport: ['53'], src: ['10.0.0.0/8'] },
    ]);
  });

  it('when an opening is formatted, then it reads as the spec that makes it', () => {
    for (const spec of ['tcp:443', 'tcp:8000-8080,9000/from=10.0.0.0/8,2001:db8::/32', 'any']) {
      expect(formatAllowSpec(parseAllowSpec(spec))).toBe(spec);
    }
    expect(formatAllowSpec({})).toBe('any');
    expect(formatAllowSpec({ protocol: 'icmp', src: ['@zone:lan'] })).toBe('icmp/from=@zone:lan');
  });
});
