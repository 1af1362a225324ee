import { describe, expect, it } from 'vitest';
import type { ClaimedHost } from '../../../src/reconciler/host-work-store.ts';
import {
  HostPhases,
  nextPhase,
  type HostEvent,
  type HostPhase,
} from '../../../src/reconciler/host-phase.ts';

const claim: ClaimedHost = {
  host: 'h1',
  gen: 3,
  epoch: 1_900_000_000_000,
  attempts: 0,
  converging: false,
};
const RUN = 'r0000000-0000-4000-8000-000000000000';

const claimed: HostPhase = { phase: 'claimed', claim };
const running: HostPhase = { phase: 'running', claim, runId: RUN };
const settling: HostPhase = { phase: 'settling', claim, runId: RUN };

const events: Record<HostEvent['type'], HostEvent> = {
  claimed: { type: 'claimed', claim },
  started: { type: 'started', runId: RUN },
  ended: { type: 'ended' },
  failed: { type: 'failed' },
  finished: { type: 'finished' },
};

describe('nextPhase: legal transitions', () => {
  it('when an idle host is claimed, then it is claimed with its claim', () => {
    expect(nextPhase(null, events.claimed)).toEqual({ phase: 'claimed', claim });
  });

  it('when the run of a claimed host starts, then it is running that run', () => {
    expect(nextPhase(claimed, events.started)).toEqual({ phase: 'running', claim, runId: RUN });
  });

  it('when the run of a running host ends, then it is settling, still naming the run', () => {
    expect(nextPhase(running, events.ended)).toEqual({ phase: 'settling', claim, runId: RUN });
  });

  it('when the run of a claimed host could not start, then it is settling with no run', () => {
    expect(nextPhase(claimed, events.failed)).toEqual({ phase: 'settling', claim, runId: null });
  });

  it('when a running host fails, then it is settling, still naming the run', () => {
    expect(nextPhase(running, events.failed)).toEqual({ phase: 'settling', claim, runId: RUN });
  });

  it('when a settling host is finished, then it is idle again', () => {
    expect(nextPhase(settling, events.finished)).toBeNull();
  });
});

describe('nextPhase: illegal transitions throw', () => {
  const phases: [string, HostPhase | null][] = [
    ['idle', null],
    ['claimed', claimed],
    ['running', running],
    ['settling', settling],
  ];
  const legal = new Set([
    'idle claimed',
    'claimed started',
    'claimed failed',
    'running ended',
    'running failed',
    'settling finished',
  ]);
  const illegal = phases.flatMap(([name, phase]) =>
    Object.values(events)
      .filter((e) => !legal.has(`${name} ${e.type}`))
      .map((e) => [name, e.type, phase, e] as const),
  );

  it('covers every pair of phase and event that is not a legal transition (14)', () => {
    expect(illegal).toHaveLength(14);
  });

  it.each(illegal)(
    'when a host %s gets %s, then it throws naming both',
    (name, type, phase, event) => {
      expect(() => nextPhase(phase, event)).toThrow(
        `reconciler: '${type}' is not a transition from ${name}`,
      );
    },
  );
});

describe('HostPhases', () => {
  it('when a host goes through a whole claim, then it is held until finished', () => {
    const phases = new HostPhases();
    phases.apply('h1', events.claimed);
    phases.apply('h1', events.started);
    phases.apply('h1', events.ended);
    expect(phases.hosts).toEqual(['h1']);
    expect(phases.get('h1')).toEqual(settling);

    phases.apply('h1', events.finished);
    expect(phases.hosts).toEqual([]);
    expect(phases.get('h1')).toBeUndefined();
  });

  it('when an event is illegal, then it throws and the host keeps its phase', () => {
    const phases = new HostPhases();
    phases.apply('h1', events.claimed);

    expect(() => phases.apply('h1', events.claimed)).toThrow(/not a transition from claimed/);
    expect(phases.get('h1')).toEqual(claimed);
  });

  it('when hosts are held, then each moves on its own', () => {
    const phases = new HostPhases();
    phases.apply('h1', events.claimed);
    phases.apply('h2', { type: 'claimed', claim: { ...claim, host: 'h2' } });
    phases.apply('h1', events.failed);

    expect(phases.get('h1')?.phase).toBe('settling');
    expect(phases.get('h2')?.phase).toBe('claimed');
  });
});
