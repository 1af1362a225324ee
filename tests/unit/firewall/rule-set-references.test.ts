import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/http/errors.ts';
import {
  identityOf,
  parseRuleSpec,
  refOf,
  type RuleInput,
} from '../../../src/firewall/rule-input.ts';

const base: RuleInput = { host: 'h1', chain: 'input', action: 'drop' };

/** The fields a rule is refused on, each with its reason; [] when it is accepted. */
function fields(input: RuleInput): string[] {
  try {
    parseRuleSpec(input, '/body');
  } catch (err) {
    if (err instanceof ValidationError) return err.fields.map((f) => `${f.field}: ${f.message}`);
    throw err;
  }
  return [];
}

describe('refOf', () => {
  it('when a list holds one @name, then it is a set reference', () => {
    expect(refOf(['@blocklist'])).toEqual({ kind: 'set', name: 'blocklist' });
  });

  it('when a list holds one @zone:NAME, then it is a zone reference', () => {
    expect(refOf(['@zone:lan'])).toEqual({ kind: 'zone', name: 'lan' });
  });

  it('when a list holds values, is empty, or holds a reference among others, then it is no reference', () => {
    expect(refOf(['10.0.0.0/8'])).toBeNull();
    expect(refOf([])).toBeNull();
    expect(refOf(['@blocklist', '10.0.0.0/8'])).toBeNull();
  });

  it('when a reference is malformed (capital, leading digit, empty name), then it is no reference', () => {
    expect(refOf(['@Blocklist'])).toBeNull();
    expect(refOf(['@1list'])).toBeNull();
    expect(refOf(['@'])).toBeNull();
    expect(refOf(['@zone:'])).toBeNull();
  });
});

describe('parseRuleSpec with set references', () => {
  it('when src names a set, then the reference is kept as it is', () => {
    const spec = parseRuleSpec({ ...base, src: ['@blocklist'] }, '/body');
    expect(spec.match.src).toEqual(['@blocklist']);
  });

  it('when src or dst names a zone, then it is accepted as it is', () => {
    const spec = parseRuleSpec(
      { ...base, chain: 'forward', action: 'accept', src: ['@zone:lan'], dst: ['@zone:wan'] },
      '/body',
    );
    expect(spec.match.src).toEqual(['@zone:lan']);
    expect(spec.match.dst).toEqual(['@zone:wan']);
  });

  it('when a reference is listed with addresses, then the field is refused: a reference stands alone', () => {
    expect(fields({ ...base, src: ['@blocklist', '10.0.0.0/8'] })).toEqual([
      '/body/src: a set reference stands alone: list values or name one set',
    ]);
  });

  it('when a reference is malformed, then the field is refused with the expected shape', () => {
    expect(fields({ ...base, dst: ['@Bad-Name'] })).toEqual([
      "/body/dst: '@Bad-Name' is not a set reference (@name: a-z, 0-9, _; or @zone:NAME)",
    ]);
  });

  it('when dport names a zone, then dport is refused: a zone holds addresses, not ports', () => {
    expect(fields({ ...base, protocol: 'tcp', dport: ['@zone:lan'] })).toEqual([
      '/body/dport: a zone holds addresses, not ports',
    ]);
  });

  it('when dport names a port set with protocol tcp, then the reference is kept', () => {
    const spec = parseRuleSpec({ ...base, protocol: 'tcp', dport: ['@web'] }, '/body');
    expect(spec.match.dport).toEqual(['@web']);
  });

  it('when dport names a port set with protocol any, then dport is refused: ports need tcp or udp', () => {
    expect(fields({ ...base, dport: ['@web'] })).toEqual([
      "/body/dport: ports need protocol tcp or udp (this rule's protocol is any)",
    ]);
  });
});

describe('identityOf with a route', () => {
  const spec = parseRuleSpec(
    { ...base, chain: 'forward', action: 'accept', dst: ['203.0.113.0/24'] },
    '/body',
  );
  const route = 'a0000000-0000-4000-8000-000000000001';

  it('when the same rule is a route’s opening, then its identity differs from the hand-made one', () => {
    expect(identityOf(spec, route)).not.toBe(identityOf(spec));
  });

  it('when the identity is computed twice, then it is the same (with or without a route)', () => {
    expect(identityOf(spec)).toBe(identityOf(structuredClone(spec)));
    expect(identityOf(spec, route)).toBe(identityOf(structuredClone(spec), route));
    expect(identityOf(spec, null)).toBe(identityOf(spec));
  });

  it('when two routes open the same rule, then each opening has its own identity', () => {
    expect(identityOf(spec, route)).not.toBe(
      identityOf(spec, 'a0000000-0000-4000-8000-000000000002'),
    );
  });
});
