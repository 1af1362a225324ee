import { describe, expect, it } from 'vitest';
import {
  checkExtravars,
  markUnsafe,
  parseSidecar,
  SidecarError,
  valueProblem,
} from '../../../src/runs/playbook-vars.ts';

describe('catalog sidecars', () => {
  it('when a sidecar declares typed variables, then each becomes a spec with its default', () => {
    expect(
      parseSidecar(
        { target: { type: 'str', required: true }, count: { type: 'int', default: 3 } },
        'x.vars.yml',
      ),
    ).toEqual([
      { name: 'target', type: 'str', required: true },
      { name: 'count', type: 'int', required: false, default: 3 },
    ]);
  });

  it.each([
    ['declares inventory_hostname', { inventory_hostname: { type: 'str' } }, /magic/],
    ['declares an ansible_ variable', { ansible_host: { type: 'str' } }, /ansible_/],
    ['has an unknown type', { a: { type: 'string' } }, /type must be one of/],
    [
      'has a default of another type',
      { a: { type: 'int', default: 'x' } },
      /default must be an integer/,
    ],
    [
      'has a default holding __ansible_vault',
      { a: { type: 'dict', default: { __ansible_vault: 'v' } } },
      /__ansible/,
    ],
    ['has an unknown key', { a: { type: 'str', secret: true } }, /unknown key/],
    ['is not a mapping', ['a'], /must be a mapping/],
  ])('when a sidecar %s, then it is refused', (_why, doc, why) => {
    expect(() => parseSidecar(doc, 'x.vars.yml')).toThrow(SidecarError);
    expect(() => parseSidecar(doc, 'x.vars.yml')).toThrow(why);
  });

  it('when a sidecar is empty, then the playbook accepts nothing', () => {
    expect(parseSidecar(null, 'x.vars.yml')).toEqual([]);
  });
});

describe('extravars against a sidecar', () => {
  const specs = parseSidecar(
    { text: { type: 'str', required: true }, flags: { type: 'list', default: [] } },
    'x.vars.yml',
  );

  it('when a declared optional variable is absent, then its default is filled in', () => {
    expect(checkExtravars('x', specs, { text: 'a' })).toEqual({ text: 'a', flags: [] });
  });

  it('when a key is the JSON-pointer-unsafe a/b, then the problem field escapes it', () => {
    expect(() => checkExtravars('x', specs, { text: 'a', 'a/b': 1 })).toThrow(
      expect.objectContaining({
        fields: [expect.objectContaining({ field: '/body/extravars/a~1b' })],
      }),
    );
  });
});

describe('Ansible-special keys and unsafe marking', () => {
  it('when a key starting with __ansible hides deep in lists and dicts, then its pointer is found', () => {
    expect(valueProblem({ a: [{ b: { __ansible_vault: 'x' } }] }, '/v')?.at).toBe(
      '/v/a/0/b/__ansible_vault',
    );
    expect(valueProblem({ a: ['__ansible_vault'] }, '/v')).toBeNull();
  });

  it('when extravars are written for Ansible, then every value is wrapped unsafe and null stays null', () => {
    expect(markUnsafe({ a: 'x', b: [1], c: null, d: 2 })).toEqual({
      a: { __ansible_unsafe: 'x' },
      b: { __ansible_unsafe: [1] },
      c: null,
      d: { __ansible_unsafe: 2 },
    });
  });
});
