import * as crypto from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  generateToken,
  sha256,
  TokenConfigError,
  TokenRegistry,
} from '../../../src/auth/token-registry.ts';

// Counts the comparisons verify() makes, to show it compares every digest whatever matches.
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return { ...real, timingSafeEqual: vi.fn(real.timingSafeEqual) };
});

const hex = (token: string) => sha256(token).toString('hex');

describe('sha256', () => {
  it('when hashing a token, then it is the standard SHA-256 digest of its UTF-8 bytes', () => {
    expect(hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256('é')).toEqual(
      crypto.createHash('sha256').update(Buffer.from('c3a9', 'hex')).digest(),
    );
  });
});

describe('generateToken', () => {
  it('when called twice, then it returns distinct url-safe tokens of 256 bits', () => {
    const [a, b] = [generateToken(), generateToken()];
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
  });
});

describe('TokenRegistry.fromPlain (API_TOKENS)', () => {
  it('when entries are comma-separated name:role:token, then each becomes a digest entry', () => {
    const entries = TokenRegistry.fromPlain(' alice:admin:alice-token-1 , bob:viewer:bob-token-2,');
    expect(entries).toEqual([
      { name: 'alice', role: 'admin', digest: sha256('alice-token-1') },
      { name: 'bob', role: 'viewer', digest: sha256('bob-token-2') },
    ]);
  });

  it('when a token itself contains colons, then they stay part of the token', () => {
    const [entry] = TokenRegistry.fromPlain('ci:operator:a:b:c:d:e:f');
    expect(entry?.digest).toEqual(sha256('a:b:c:d:e:f'));
  });

  it.each([
    ['an unknown role', 'alice:root:alice-token-1'],
    ['a token under 8 characters', 'alice:admin:1234567'],
    ['no name', ':admin:alice-token-1'],
    ['no fields', 'alice-token-1'],
  ])('when an entry has %s, then it is rejected naming API_TOKENS and its position', (_c, spec) => {
    const parse = () => TokenRegistry.fromPlain(`ok:viewer:fine-token-0,${spec}`);
    expect(parse).toThrow(TokenConfigError);
    expect(parse).toThrow(/^API_TOKENS: entry 2 /);
  });

  it('when an entry is rejected, then the message does not repeat its token', () => {
    expect(() => TokenRegistry.fromPlain('alice:root:very-secret-token')).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('very-secret-token') }),
    );
  });
});

describe('TokenRegistry.fromDigestFile (API_TOKENS_FILE)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'routeplane-tokens-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const file = async (name: string, text: string) => {
    const f = path.join(dir, name);
    await writeFile(f, text);
    return f;
  };

  it('when the file has digest lines, comments and blanks, then each line is an entry', async () => {
    const f = await file(
      'good',
      [
        '# name:role:sha256hex',
        '',
        `ci:operator:${hex('ci-token-123')}`,
        `  ops:admin:${hex('ops-token-456').toUpperCase()}  `,
        '',
      ].join('\n'),
    );
    const registry = TokenRegistry.of(TokenRegistry.fromDigestFile(f));
    expect(registry.size).toBe(2);
    expect(registry.verify('ci-token-123')).toEqual({ name: 'ci', role: 'operator' });
    expect(registry.verify('ops-token-456')).toEqual({ name: 'ops', role: 'admin' });
  });

  it.each([
    ['a digest of 63 hex digits', `ci:operator:${hex('x').slice(1)}`],
    ['a digest that is not hex', `ci:operator:${'z'.repeat(64)}`],
    ['a plain token instead of a digest', 'ci:operator:ci-token-123'],
    ['an unknown role', `ci:root:${hex('x')}`],
    ['no digest', 'ci:operator'],
  ])(
    'when a line has %s, then the file is rejected naming API_TOKENS_FILE and the line',
    async (_c, line) => {
      const f = await file('bad', `# tokens\n${line}\n`);
      expect(() => TokenRegistry.fromDigestFile(f)).toThrow(TokenConfigError);
      expect(() => TokenRegistry.fromDigestFile(f)).toThrow(
        new RegExp(`^API_TOKENS_FILE ${f}: line 2 `),
      );
    },
  );
});

describe('TokenRegistry.verify', () => {
  const registry = TokenRegistry.of(
    TokenRegistry.fromPlain(
      'a:viewer:token-aaaaaaaa,b:operator:token-bbbbbbbb,c:admin:token-cccccccc',
    ),
  );
  const compare = vi.mocked(crypto.timingSafeEqual);
  beforeEach(() => {
    compare.mockClear();
  });

  it('when the token is known, then its name and role come back', () => {
    expect(registry.verify('token-bbbbbbbb')).toEqual({ name: 'b', role: 'operator' });
  });

  it('when the token is unknown, empty or differs by one character, then nothing matches', () => {
    expect(registry.verify('token-dddddddd')).toBeNull();
    expect(registry.verify('')).toBeNull();
    expect(registry.verify('token-bbbbbbbB')).toBeNull();
  });

  it('when the first entry matches, then every digest is still compared in constant time', () => {
    expect(registry.verify('token-aaaaaaaa')).toEqual({ name: 'a', role: 'viewer' });
    expect(compare).toHaveBeenCalledTimes(3);
    for (const [known, given] of compare.mock.calls) {
      expect((known as Buffer).length).toBe(32);
      expect(given).toEqual(sha256('token-aaaaaaaa'));
    }
  });

  it('when nothing matches, then the same number of comparisons is made', () => {
    registry.verify('token-zzzzzzzz');
    expect(compare).toHaveBeenCalledTimes(3);
  });

  it('when the registry is inspected, then it holds digests only, never a plain token', () => {
    expect(inspect(registry, { depth: 10, showHidden: true })).not.toMatch(/token-[abc]{8}/);
  });
});
