/** Exponential backoff with jitter, capped: 1x, 2x, 4x ... the base, never above `maxMs`. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  // Up to 10% jitter so hosts that failed together do not retry in lockstep.
  return Math.round(Math.min(maxMs, exp * (1 + Math.random() * 0.1)));
}
