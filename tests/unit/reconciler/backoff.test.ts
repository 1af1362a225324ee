import { describe, expect, it } from 'vitest';
import { backoffMs } from '../../../src/reconciler/backoff.ts';

const BASE = 1_000;
const MAX = 60_000;
const fixed = (v: number) => () => v;
/** The largest value Math.random can return is below 1; this is near it. */
const HIGHEST = 0.999_999;

describe('backoffMs', () => {
  it('when attempts fail one after another, then the delay grows 1x, 2x, 4x the base', () => {
    expect([0, 1, 2].map((a) => backoffMs(a, BASE, MAX, fixed(0)))).toEqual([1_000, 2_000, 4_000]);
  });

  it('when the attempts are many, then the delay is never above the max', () => {
    for (const attempt of [0, 5, 6, 7, 10, 30, 31, 1_000]) {
      for (const r of [0, 0.5, HIGHEST]) {
        expect(backoffMs(attempt, BASE, MAX, fixed(r))).toBeLessThanOrEqual(MAX);
      }
    }
    expect(backoffMs(1_000, BASE, MAX, fixed(0))).toBe(MAX);
  });

  it('when the cap is reached, then two different random values still give different delays', () => {
    const low = backoffMs(20, BASE, MAX, fixed(0.1));
    const high = backoffMs(20, BASE, MAX, fixed(0.9));

    expect(low).not.toBe(high);
    expect([low, high]).toEqual([58_800, 49_200]);
  });

  it('when the random value is at its highest, then the delay is still at least 80% of the ceiling', () => {
    for (const attempt of [0, 1, 2, 3, 6, 20]) {
      const ceiling = Math.min(MAX, BASE * 2 ** attempt);
      expect(backoffMs(attempt, BASE, MAX, fixed(HIGHEST))).toBeGreaterThanOrEqual(0.8 * ceiling);
    }
  });

  it('when the base is tiny, then the delay is still at least 1 ms', () => {
    expect(backoffMs(0, 1, 1, fixed(HIGHEST))).toBe(1);
    expect(backoffMs(0, 0, 0, fixed(0))).toBe(1);
  });
});
