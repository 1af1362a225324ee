import { describe, expect, it } from 'vitest';
import type { KernelRoute } from '../../../src/hosts/host-state.ts';
import { ConflictError, ForbiddenError } from '../../../src/http/errors.ts';
import { LockoutGuard, wouldCapture } from '../../../src/routes/lockout-guard.ts';
import type { PlannedRoute } from '../../../src/routes/route-plan.ts';

const route = (dst: string, table = 'main'): KernelRoute => ({
  family: dst.includes(':') ? 'inet6' : 'inet',
  dst,
  gateway: null,
  dev: 'eth0',
  protocol: 'kernel',
  metric: null,
  table,
  scope: 'link',
  prefsrc: null,
  type: 'unicast',
  flags: [],
});

// h1 and h2 are reached from 198.51.100.1 over their connected /24; h3 from 192.0.2.1.
const KNOWN: Record<string, KernelRoute[]> = {
  h1: [route('0.0.0.0/0'), route('198.51.100.0/24')],
  h2: [route('198.51.100.0/24')],
  h3: [route('192.0.2.0/24')],
};
const MGMT: Record<string, string> = { h1: '198.51.100.1', h2: '198.51.100.1', h3: '192.0.2.1' };

const guard = new LockoutGuard({
  managementAddresses: async (hosts) =>
    Object.fromEntries(hosts.filter((h) => MGMT[h]).map((h) => [h, MGMT[h]!])),
  knownRoutes: async (h) => KNOWN[h] ?? null,
});

const planned = (base: string, to: string, hosts: string[], force = true): PlannedRoute[] =>
  hosts.map(
    (host) =>
      ({
        spec: { host, to, force, metric: 0 },
        schedule: {},
        input: {},
        base,
      }) as unknown as PlannedRoute,
  );
const admin = { name: 'ada', role: 'admin' } as const;
const operator = { name: 'otto', role: 'operator' } as const;

describe('wouldCapture', () => {
  it('when a longer prefix than the connected route contains the address, then it captures', () => {
    expect(wouldCapture('198.51.100.0/25', 0, '198.51.100.1', KNOWN.h1!)).toBe(true);
    expect(wouldCapture('198.51.100.1/32', 0, '198.51.100.1', KNOWN.h1!)).toBe(true);
  });

  it('when the same prefix comes with a lower metric, then it captures; with a higher one it does not', () => {
    const metered = [{ ...route('198.51.100.0/24'), metric: 100 }];
    expect(wouldCapture('198.51.100.0/24', 50, '198.51.100.1', metered)).toBe(true);
    expect(wouldCapture('198.51.100.0/24', 200, '198.51.100.1', metered)).toBe(false);
  });

  it('when a default route is added beside a connected route, then it does not capture', () => {
    expect(wouldCapture('0.0.0.0/0', 0, '198.51.100.1', KNOWN.h2!)).toBe(false);
  });

  it('when the prefix does not contain the address, or is of the other family, then it does not capture', () => {
    expect(wouldCapture('203.0.113.0/24', 0, '198.51.100.1', KNOWN.h1!)).toBe(false);
    expect(wouldCapture('2001:db8::/32', 1024, '198.51.100.1', KNOWN.h1!)).toBe(false);
  });

  it('when a route of another table contains the address, then the main table still decides', () => {
    const other = [route('198.51.100.0/28', '100'), route('198.51.100.0/24')];
    expect(wouldCapture('198.51.100.0/26', 0, '198.51.100.1', other)).toBe(true);
  });

  it('when the host was never gathered, then any containing route but a default one counts', () => {
    expect(wouldCapture('198.51.100.0/24', 0, '198.51.100.1', null)).toBe(true);
    expect(wouldCapture('0.0.0.0/0', 0, '198.51.100.1', null)).toBe(false);
  });
});

describe('LockoutGuard', () => {
  it('when nothing is forced, then any role passes without a lookup', async () => {
    await expect(
      guard.check(planned('/body', '198.51.100.1/32', ['h1'], false), operator),
    ).resolves.toBeUndefined();
  });

  it('when an operator forces a route, then 403 names force and the role', async () => {
    const err = await guard
      .check(planned('/body/0', '203.0.113.0/24', ['h1']), operator)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ForbiddenError);
    expect((err as Error).message).toMatch(/\/body\/0\/force: .*admin role/);
  });

  it('when an admin forces a route that captures every targeted host, then it is refused naming them', async () => {
    const err = await guard
      .check(planned('/body/1', '198.51.100.0/25', ['h1', 'h2']), admin)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toMatch(/every host it targets: h1 \(198.51.100.1\), h2/);
  });

  it('when an admin forces a route that captures only some targeted hosts, then it passes', async () => {
    await expect(
      guard.check(planned('/body', '198.51.100.0/25', ['h1', 'h3']), admin),
    ).resolves.toBeUndefined();
  });

  it("when a host's management address is unknown, then the module decides and the guard passes", async () => {
    await expect(
      guard.check(planned('/body', '198.51.100.0/25', ['h1', 'h9']), admin),
    ).resolves.toBeUndefined();
  });
});
