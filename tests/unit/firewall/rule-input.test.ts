import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/http/errors.ts';
import { identityOf, parseRuleSpec, type RuleInput } from '../../../src/firewall/rule-input.ts';

const base: RuleInput = { host: 'h1', chain: 'input', action: 'accept' };

function fields(input: RuleInput): string[] {
  try {
    parseRuleSpec(input, '/body');
  } catch (err) {
    if (err instanceof ValidationError) return err.fields.map((f) => `${f.field}: ${f.message}`);
    throw err;
  }
  return [];
}

describe('parseRuleSpec', () => {
  it('when a rule names only host, chain and action, then it gets family inet, protocol any, priority 100 and empty matches', () => {
    expect(parseRuleSpec(base, '/body')).toEqual({
      host: 'h1',
      chain: 'input',
      family: 'inet',
      protocol: 'any',
      match: { src: [], dst: [], sport: [], dport: [], iif: null, oif: null, to: null },
      action: 'accept',
      priority: 100,
    });
  });

  it('when prefixes and ports come in any spelling and order, then they are canonical, sorted and unique', () => {
    const spec = parseRuleSpec(
      {
        ...base,
        protocol: 'tcp',
        src: ['2001:DB8::/32', '10.0.0.0/8', '10.0.0.0/8'],
        dport: ['443', '22', '1000-2000'],
      },
      '/body',
    );
    expect(spec.match.src).toEqual(['10.0.0.0/8', '2001:db8::/32']);
    expect(spec.match.dport).toEqual(['1000-2000', '22', '443']);
  });

  it('when ports come without tcp or udp, then each port list is named with the reason', () => {
    expect(fields({ ...base, protocol: 'icmp', dport: ['22'], sport: ['1'] })).toEqual([
      "/body/sport: ports need protocol tcp or udp (this rule's protocol is icmp)",
      "/body/dport: ports need protocol tcp or udp (this rule's protocol is icmp)",
    ]);
  });

  it('when NAT is asked in the wrong chain, then the action is named: dnat outside prerouting/output, snat and masquerade outside postrouting', () => {
    expect(fields({ ...base, action: 'dnat', to: { address: '192.0.2.1' } })).toEqual([
      '/body/action: dnat belongs in prerouting or output',
    ]);
    expect(fields({ ...base, chain: 'forward', action: 'masquerade' })).toEqual([
      '/body/action: masquerade belongs in postrouting',
    ]);
    expect(fields({ ...base, chain: 'prerouting', action: 'drop' })).toHaveLength(1);
  });

  it('when an address is of the other family, then the field and the family are named', () => {
    expect(fields({ ...base, family: 'ip', src: ['2001:db8::/32'] })).toEqual([
      "/body/src/0: '2001:db8::/32' is IPv6 in an ip (IPv4) rule",
    ]);
    expect(fields({ ...base, family: 'ip6', dst: ['192.0.2.0/24'] })).toEqual([
      "/body/dst/0: '192.0.2.0/24' is IPv4 in an ip6 rule",
    ]);
  });

  it('when a target is missing, misplaced or malformed, then `to` is named', () => {
    expect(fields({ ...base, chain: 'prerouting', action: 'dnat' })).toEqual([
      '/body/to: dnat needs a target address',
    ]);
    expect(fields({ ...base, to: { address: '192.0.2.1' } })).toEqual([
      '/body/to: only dnat and snat take a target',
    ]);
    expect(
      fields({ ...base, chain: 'prerouting', action: 'dnat', to: { address: 'nope', port: 80 } }),
    ).toContain("/body/to/address: 'nope' is not an IP address");
  });

  it('when a port range is upside down or out of range, then the port is named', () => {
    expect(fields({ ...base, protocol: 'udp', dport: ['2000-1000', '70000'] })).toEqual([
      "/body/dport/0: '2000-1000' is not a port (1-65535) or a range low-high",
      "/body/dport/1: '70000' is not a port (1-65535) or a range low-high",
    ]);
  });
});

describe('identityOf', () => {
  it('when two rules differ only in the spelling and order of their matches, then they have one identity; a different port is another', () => {
    const a = parseRuleSpec(
      { ...base, protocol: 'tcp', src: ['10.0.0.0/8', '192.0.2.0/24'], dport: ['80'] },
      '/b',
    );
    const b = parseRuleSpec(
      { ...base, protocol: 'tcp', src: ['192.0.2.0/24', '10.0.0.0/8'], dport: ['80'] },
      '/b',
    );
    const c = parseRuleSpec(
      { ...base, protocol: 'tcp', src: ['10.0.0.0/8', '192.0.2.0/24'], dport: ['81'] },
      '/b',
    );
    expect(identityOf(a)).toBe(identityOf(b));
    expect(identityOf(a)).not.toBe(identityOf(c));
  });
});
