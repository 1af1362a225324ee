import { ConflictError } from '../http/errors.ts';

/** What one try of a read-then-write returns: its result, or that a concurrent change won. */
export type RaceOutcome<T> = { won: T } | { lost: true };

export const won = <T>(value: T): RaceOutcome<T> => ({ won: value });
export const LOST: RaceOutcome<never> = { lost: true };

/** How many times a read-then-write is tried before the caller is told to send again. */
export const MAX_RACE_TRIES = 8;

/**
 * Tries a read-then-write until no concurrent change slips between its read and its write,
 * a bounded number of times: a row changed under every try (a hot spot) becomes a 409 asking
 * the client to send again, never an endless loop or a deep recursion.
 */
export async function retryLostRaces<T>(
  what: string,
  attempt: (tryNumber: number) => Promise<RaceOutcome<T>>,
  tries = MAX_RACE_TRIES,
): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const outcome = await attempt(i);
    if ('won' in outcome) return outcome.won;
  }
  throw new ConflictError(
    `${what} was changed concurrently ${tries} times while this request ran; send it again`,
  );
}
