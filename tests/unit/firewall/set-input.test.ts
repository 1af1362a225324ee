import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/http/errors.ts';
import { parseElements } from '../../../src/firewall/set-input.ts';
import type { SetType } from '../../../src/firewall/set-store.ts';

/** The elements refused, each with its reason; [] when all are accepted. */
function refused(values: string[], type: SetType): string[] {
  try {
    parseElements(values, type, '/body/elements');
  } catch (err) {
    if (err instanceof ValidationError) return err.fields.map((f) => `${f.field}: ${f.message}`);
    throw err;
  }
  return [];
}

describe('parseElements of an address set', () => {
  it('when an address comes without a length, then it is a host prefix: /32 for IPv4, /128 for IPv6', () => {
    expect(parseElements(['192.0.2.7', '2001:db8::7'], 'address', '/body/elements')).toEqual([
      '192.0.2.7/32',
      '2001:db8::7/128',
    ]);
  });

  it('when elements come in any spelling, order and repetition, then they are canonical, sorted and unique', () => {
    expect(
      parseElements(
        ['2001:DB8::/32', '10.0.0.0/8', '192.0.2.0/24', '10.0.0.0/8', '2001:db8:0::/32'],
        'address',
        '/body/elements',
      ),
    ).toEqual(['10.0.0.0/8', '192.0.2.0/24', '2001:db8::/32']);
  });

  it('when an element has host bits set, then it is refused by its index with the network named', () => {
    expect(refused(['10.0.0.0/8', '192.0.2.1/24'], 'address')).toEqual([
      "/body/elements/1: '192.0.2.1/24' has host bits set; the network is 192.0.2.0/24",
    ]);
  });

  it('when an element is not an address, then it is refused by its index', () => {
    expect(refused(['nope'], 'address')).toEqual([
      "/body/elements/0: 'nope' is not an IPv4 or IPv6 prefix",
    ]);
  });

  it('when no element is given, then the set is empty', () => {
    expect(parseElements([], 'address', '/body/elements')).toEqual([]);
  });
});

describe('parseElements of a port set', () => {
  it('when a range has equal ends, then it is the single port; ranges and ports are sorted and unique', () => {
    expect(
      parseElements(['80-80', '443', '80', '1000-2000', '443'], 'port', '/body/elements'),
    ).toEqual(['1000-2000', '443', '80']);
  });

  it('when a port is out of range or a range is reversed, then each is refused by its index', () => {
    expect(refused(['22', '0', '70000', '2000-1000'], 'port')).toEqual([
      "/body/elements/1: '0' is not a port (1-65535) or a range low-high",
      "/body/elements/2: '70000' is not a port (1-65535) or a range low-high",
      "/body/elements/3: '2000-1000' is not a port (1-65535) or a range low-high",
    ]);
  });

  it('when a prefix is listed in a port set, then it is refused as not a port or range', () => {
    expect(refused(['10.0.0.0/8'], 'port')).toEqual([
      "/body/elements/0: '10.0.0.0/8' is not a port or range",
    ]);
  });

  it('when every wrong element is named, then the message lists them all in one 400', () => {
    let error: unknown;
    try {
      parseElements(['x', '99999'], 'port', '/query/element');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).status).toBe(400);
    expect((error as ValidationError).fields.map((f) => f.field)).toEqual([
      '/query/element/0',
      '/query/element/1',
    ]);
  });
});
