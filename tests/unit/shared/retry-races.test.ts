import { describe, expect, it } from 'vitest';
import { ConflictError } from '../../../src/http/errors.ts';
import {
  LOST,
  MAX_RACE_TRIES,
  retryLostRaces,
  won,
  type RaceOutcome,
} from '../../../src/shared/retry-races.ts';

/** A try that answers each call with the next outcome, recording the try numbers it got. */
function tries<T>(...outcomes: RaceOutcome<T>[]) {
  const seen: number[] = [];
  const attempt = async (n: number) => {
    seen.push(n);
    return outcomes[Math.min(n, outcomes.length - 1)]!;
  };
  return { seen, attempt };
}

describe('retryLostRaces', () => {
  it('when the first try wins, then its value is returned and nothing is tried again', async () => {
    const t = tries(won('route-1'));

    await expect(retryLostRaces('route 1', t.attempt)).resolves.toBe('route-1');
    expect(t.seen).toEqual([0]);
  });

  it('when tries lose, then it tries again until one wins, numbering each try', async () => {
    const t = tries<number>(LOST, LOST, won(3));

    await expect(retryLostRaces('route 1', t.attempt)).resolves.toBe(3);
    expect(t.seen).toEqual([0, 1, 2]);
  });

  it('when every try loses, then it stops after MAX_RACE_TRIES with a 409 conflict naming what changed', async () => {
    const t = tries<never>(LOST);

    const err = await retryLostRaces('route 1', t.attempt).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(err).toMatchObject({ status: 409, slug: 'conflict' });
    expect((err as Error).message).toContain(
      `route 1 was changed concurrently ${MAX_RACE_TRIES} times`,
    );
    expect(t.seen).toHaveLength(MAX_RACE_TRIES);
  });

  it('when the last allowed try wins, then its value is returned', async () => {
    const t = tries<string>(
      ...Array<RaceOutcome<string>>(MAX_RACE_TRIES - 1).fill(LOST),
      won('late'),
    );

    await expect(retryLostRaces('route 1', t.attempt)).resolves.toBe('late');
    expect(t.seen).toHaveLength(MAX_RACE_TRIES);
  });

  it('when given a bound, then it tries at most that many times', async () => {
    const t = tries<never>(LOST);

    await expect(retryLostRaces('route 1', t.attempt, 3)).rejects.toThrow(/3 times/);
    expect(t.seen).toEqual([0, 1, 2]);
  });

  it('when a try throws, then the error is passed on and nothing is tried again', async () => {
    const seen: number[] = [];
    const attempt = async (n: number): Promise<RaceOutcome<string>> => {
      seen.push(n);
      throw new Error('connection terminated');
    };

    await expect(retryLostRaces('route 1', attempt)).rejects.toThrow('connection terminated');
    expect(seen).toEqual([0]);
  });
});
