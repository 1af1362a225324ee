import type { ClaimedHost } from './host-work-store.ts';

/**
 * What this process is doing with one host it claimed. A host it does not hold is idle (not in
 * the map); everything else about a host (owed generations, attempts, retry time) is in its
 * durable work row, never here.
 *
 *   idle --claimed--> claimed --started(runId)--> running --ended--> settling --finished--> idle
 *                        \--------------------------failed----------------------------/
 */
export type HostPhase =
  | { phase: 'claimed'; claim: ClaimedHost }
  | { phase: 'running'; claim: ClaimedHost; runId: string }
  | { phase: 'settling'; claim: ClaimedHost; runId: string | null };

export type HostEvent =
  | { type: 'claimed'; claim: ClaimedHost }
  | { type: 'started'; runId: string }
  | { type: 'ended' }
  | { type: 'failed' }
  | { type: 'finished' };

/** The next phase, or null for idle. An event that makes no sense in a phase is a bug: throw. */
export function nextPhase(current: HostPhase | null, event: HostEvent): HostPhase | null {
  const bad = () =>
    new Error(`reconciler: '${event.type}' is not a transition from ${current?.phase ?? 'idle'}`);
  switch (event.type) {
    case 'claimed':
      if (current) throw bad();
      return { phase: 'claimed', claim: event.claim };
    case 'started':
      if (current?.phase !== 'claimed') throw bad();
      return { phase: 'running', claim: current.claim, runId: event.runId };
    case 'ended':
      if (current?.phase !== 'running') throw bad();
      return { phase: 'settling', claim: current.claim, runId: current.runId };
    case 'failed':
      // The run could not start or could not be settled: the claim is settled as a failure.
      if (!current || current.phase === 'settling') throw bad();
      return {
        phase: 'settling',
        claim: current.claim,
        runId: current.phase === 'running' ? current.runId : null,
      };
    case 'finished':
      if (current?.phase !== 'settling') throw bad();
      return null;
  }
}

/** Every host this process holds, moved only through `nextPhase`. */
export class HostPhases {
  private readonly phases = new Map<string, HostPhase>();

  apply(host: string, event: HostEvent): void {
    const next = nextPhase(this.phases.get(host) ?? null, event);
    if (next) this.phases.set(host, next);
    else this.phases.delete(host);
  }

  get(host: string): HostPhase | undefined {
    return this.phases.get(host);
  }

  get hosts(): string[] {
    return [...this.phases.keys()];
  }
}
