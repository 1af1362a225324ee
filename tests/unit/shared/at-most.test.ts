import { describe, expect, it } from 'vitest';
import { atMost } from '../../../src/shared/at-most.ts';

describe('atMost', () => {
  it('when the work ends first, then it returns as soon as the work is done', async () => {
    const t0 = Date.now();
    await atMost(new Promise((r) => setTimeout(r, 20)), 5_000);
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('when the work never ends, then it returns after the bound', async () => {
    const t0 = Date.now();
    await atMost(new Promise(() => undefined), 100);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(95);
  });

  it('when the work fails, then it returns without throwing', async () => {
    await expect(atMost(Promise.reject(new Error('boom')), 1_000)).resolves.toBeUndefined();
  });
});
