import { describe, expect, it } from 'vitest';
import { cutsManagement } from '../../../src/firewall/management-guard.ts';
import { parseRuleSpec, type RuleInput } from '../../../src/firewall/rule-input.ts';
import type { RuleMatch, RuleSpec } from '../../../src/firewall/types.ts';

const m = { sources: ['198.51.100.7'], sshPort: 22 };

const rule = (input: Omit<RuleInput, 'host'>): RuleSpec =>
  parseRuleSpec({ host: 'h1', ...input }, '/body');

/** The rule with its set references replaced by the sets' elements, as SetService.resolve does. */
const resolved = (spec: RuleSpec, elements: Partial<RuleMatch>): RuleSpec => ({
  ...spec,
  match: { ...spec.match, ...elements },
});

describe('cutsManagement of a rule naming a set', () => {
  it('when a drop rule’s resolved src set holds the controller’s address, then it is a cut', () => {
    const spec = rule({ chain: 'input', src: ['@blocklist'], action: 'drop' });
    expect(cutsManagement(resolved(spec, { src: ['192.0.2.0/24', '198.51.100.7/32'] }), m)).toMatch(
      /drop management traffic from 198\.51\.100\.7 \(SSH on port 22\)/,
    );
  });

  it('when a drop rule’s resolved src set holds a network around the controller, then it is a cut', () => {
    const spec = rule({ chain: 'input', src: ['@blocklist'], action: 'reject' });
    expect(cutsManagement(resolved(spec, { src: ['198.51.100.0/24'] }), m)).toMatch(/reject/);
  });

  it('when a drop rule’s resolved src set holds other addresses only, then it is no cut', () => {
    const spec = rule({ chain: 'input', src: ['@blocklist'], action: 'drop' });
    expect(
      cutsManagement(resolved(spec, { src: ['192.0.2.0/24', '2001:db8::/32'] }), m),
    ).toBeNull();
  });

  it('when a drop rule’s resolved port set holds the SSH port, then it is a cut; without it, none', () => {
    const spec = rule({ chain: 'input', protocol: 'tcp', dport: ['@admin'], action: 'drop' });
    expect(cutsManagement(resolved(spec, { dport: ['20-30', '443'] }), m)).not.toBeNull();
    expect(cutsManagement(resolved(spec, { dport: ['80', '443'] }), m)).toBeNull();
  });

  it('when a set reference is left unresolved in the match, then it is not judged: null', () => {
    const spec = rule({ chain: 'input', src: ['@blocklist'], action: 'drop' });
    expect(cutsManagement(spec, m)).toBeNull();
  });

  it('when a drop rule’s src is a zone, then it is not judged (the zone is known on the host only): null', () => {
    expect(
      cutsManagement(rule({ chain: 'input', src: ['@zone:lan'], action: 'drop' }), m),
    ).toBeNull();
  });

  it('when an output drop’s dst is a zone, then it is not judged: null', () => {
    expect(
      cutsManagement(rule({ chain: 'output', dst: ['@zone:mgmt'], action: 'drop' }), m),
    ).toBeNull();
  });
});
