/**
 * Exponential backoff with jitter, capped: about 1x, 2x, 4x ... the base, never above `maxMs`.
 * The jitter (up to 20%) is taken off below the ceiling rather than added and clamped, so
 * hosts that reached the cap together still retry spread out, not in lockstep.
 */
export function backoffMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.max(1, Math.round(ceiling * (1 - 0.2 * random())));
}
