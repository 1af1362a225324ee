import { describe, expect, it } from 'vitest';
import { WriteLag } from '../../../src/metrics/write-lag.ts';

function tracker() {
  const seen: number[] = [];
  let now = 1_000_000;
  const lag = new WriteLag(
    (s) => seen.push(s),
    () => now,
  );
  return { lag, seen, at: (ms: number) => (now = ms) };
}

const applied = (
  host: string,
  gen: number,
  o: { failed?: boolean; converging?: boolean } = {},
) => ({
  host,
  gen,
  failed: o.failed ?? false,
  converging: o.converging ?? false,
});

describe('write-to-kernel lag', () => {
  it('when a run carries a host up to a generation, then each write up to it is observed once from its commit', () => {
    const { lag, seen, at } = tracker();
    at(1_000);
    lag.committed(new Map([['h1', 1]]));
    at(1_500);
    lag.committed(
      new Map([
        ['h1', 2],
        ['h2', 1],
      ]),
    );
    lag.committed(new Map([['h1', 3]]));
    at(3_000);
    lag.applied([applied('h1', 2)]);
    expect(seen).toEqual([2, 1.5]);
    // The write of generation 3 came after the claim: the next run carries it.
    expect(lag.size).toBe(2);
    at(4_000);
    lag.applied([applied('h1', 3), applied('h2', 1)]);
    expect(seen).toEqual([2, 1.5, 2.5, 2.5]);
    expect(lag.size).toBe(0);
  });

  it('when the apply fails, then nothing is observed until a run that succeeds', () => {
    const { lag, seen, at } = tracker();
    at(0);
    lag.committed(new Map([['h1', 1]]));
    at(1_000);
    lag.applied([applied('h1', 1, { failed: true })]);
    expect(seen).toEqual([]);
    at(5_000);
    lag.applied([applied('h1', 1)]);
    expect(seen).toEqual([5]);
  });

  it('when a convergence claim owes nothing new, then writes another replica applied are dropped, not observed', () => {
    const { lag, seen, at } = tracker();
    at(0);
    lag.committed(new Map([['h1', 4]]));
    at(60_000);
    lag.applied([applied('h1', 4, { converging: true })]);
    expect(seen).toEqual([]);
    expect(lag.size).toBe(0);
  });

  it('when a host gets thousands of writes and never converges, then what is tracked stays bounded', () => {
    const { lag } = tracker();
    for (let gen = 1; gen <= 5_000; gen++) lag.committed(new Map([['h1', gen]]));
    expect(lag.size).toBeLessThanOrEqual(1_000);
  });

  it('when a host is applied that had no write of this process, then nothing is observed', () => {
    const { lag, seen } = tracker();
    lag.applied([applied('h9', 7)]);
    expect(seen).toEqual([]);
  });
});
