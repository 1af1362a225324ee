import { describe, expect, it } from 'vitest';
import { decide } from '../../../src/failover/failover-decision.ts';
import {
  carriedFailoverState,
  initialFailoverState,
} from '../../../src/failover/failover-input.ts';
import {
  isDegraded,
  type FailoverPolicy,
  type FailoverState,
  type GatewayHealth,
} from '../../../src/routes/types.ts';

const G1 = '198.51.100.1';
const G2 = '198.51.100.2';
const G3 = '198.51.100.3';
const T0 = new Date('2026-12-01T10:00:00Z');
const at = (s: number) => new Date(T0.getTime() + s * 1000);

const policy = (p: Partial<FailoverPolicy> = {}): FailoverPolicy => ({
  candidates: [G1, G2],
  healthCheck: [{ type: 'icmp', port: null, intervalS: 2, timeoutS: 1, rise: 2, fall: 2 }],
  mode: 'failover',
  preempt: false,
  holdDownS: 10,
  ...p,
});

/** Runs decisions in order, each on the state the previous one left. */
function steps(p: FailoverPolicy, seq: [number, Record<string, GatewayHealth>][]) {
  let state: FailoverState = initialFailoverState(p, T0);
  return seq.map(([s, seen]) => {
    const d = decide(p, state, seen, at(s));
    state = d.state;
    return d;
  });
}

describe('failover mode', () => {
  it('starts on the first candidate with every health unknown', () => {
    const s = initialFailoverState(policy(), T0);
    expect(s.activeVia).toEqual([G1]);
    expect(Object.values(s.health).map((h) => h.health)).toEqual(['unknown', 'unknown']);
    expect(isDegraded(s)).toBe(false);
  });

  it('stays on an unknown first candidate while others are healthy', () => {
    const [d] = steps(policy(), [[1, { [G2]: 'healthy' }]]);
    expect(d!.state.activeVia).toEqual([G1]);
    expect(d!.switched).toBeNull();
  });

  it('moves off a failed gateway at once to the first healthy candidate', () => {
    const p = policy({ candidates: [G1, G2, G3] });
    const [d] = steps(p, [[1, { [G1]: 'unhealthy', [G2]: 'unhealthy', [G3]: 'healthy' }]]);
    expect(d!.state.activeVia).toEqual([G3]);
    expect(d!.switched).toMatchObject({ from: [G1], to: [G3], reason: 'gateway_failed' });
  });

  it('moves off a failed gateway even within the hold-down of the last switch', () => {
    const [, d] = steps(policy({ candidates: [G1, G2, G3] }), [
      [1, { [G1]: 'unhealthy', [G2]: 'healthy', [G3]: 'healthy' }],
      [2, { [G2]: 'unhealthy' }],
    ]);
    expect(d!.state.activeVia).toEqual([G3]);
  });

  it('stays degraded, never removed, when no candidate is healthy', () => {
    const [d] = steps(policy(), [[1, { [G1]: 'unhealthy', [G2]: 'unhealthy' }]]);
    expect(d!.state.activeVia).toEqual([G1]);
    expect(isDegraded(d!.state)).toBe(true);
    expect(d!.switched).toBeNull();
  });

  it('uses the first candidate to recover after all failed', () => {
    const [, d] = steps(policy(), [
      [1, { [G1]: 'unhealthy', [G2]: 'unhealthy' }],
      [5, { [G2]: 'healthy' }],
    ]);
    expect(d!.state.activeVia).toEqual([G2]);
    expect(isDegraded(d!.state)).toBe(false);
  });

  it('without preempt stays on the later candidate after the first recovers', () => {
    const [, d] = steps(policy(), [
      [1, { [G1]: 'unhealthy', [G2]: 'healthy' }],
      [100, { [G1]: 'healthy' }],
    ]);
    expect(d!.state.activeVia).toEqual([G2]);
    expect(d!.switched).toBeNull();
    expect(d!.recheckAt).toBeNull();
  });

  it('with preempt returns only once hold_down_s has passed since the switch', () => {
    const [, early, late] = steps(policy({ preempt: true }), [
      [1, { [G1]: 'unhealthy', [G2]: 'healthy' }],
      [5, { [G1]: 'healthy' }],
      [11, {}],
    ]);
    expect(early!.state.activeVia).toEqual([G2]);
    expect(early!.recheckAt).toEqual(at(11));
    expect(late!.state.activeVia).toEqual([G1]);
    expect(late!.switched).toMatchObject({ from: [G2], to: [G1], reason: 'preempt' });
  });

  it('never moves for an unavailable check', () => {
    const [d] = steps(policy(), [[1, { [G1]: 'unavailable', [G2]: 'healthy' }]]);
    expect(d!.state.activeVia).toEqual([G1]);
    expect(isDegraded(d!.state)).toBe(false);
  });

  it('records each health change once, with its time', () => {
    const [a, b] = steps(policy(), [
      [1, { [G1]: 'healthy' }],
      [2, { [G1]: 'healthy' }],
    ]);
    expect(a!.healthChanges).toEqual([{ via: G1, from: 'unknown', to: 'healthy' }]);
    expect(a!.state.health[G1]).toEqual({ health: 'healthy', since: at(1) });
    expect(b!.healthChanges).toEqual([]);
    expect(b!.state.health[G1]!.since).toEqual(at(1));
  });
});

describe('ecmp mode', () => {
  const ecmp = (p: Partial<FailoverPolicy> = {}) => policy({ mode: 'ecmp', ...p });

  it('starts with every candidate', () => {
    expect(initialFailoverState(ecmp(), T0).activeVia).toEqual([G1, G2]);
  });

  it('drops a failed member at once', () => {
    const [d] = steps(ecmp(), [[1, { [G1]: 'unhealthy', [G2]: 'healthy' }]]);
    expect(d!.state.activeVia).toEqual([G2]);
    expect(d!.switched?.reason).toBe('gateway_failed');
  });

  it('lets a recovered member rejoin after the hold-down, in candidate order', () => {
    const [, early, late] = steps(ecmp(), [
      [1, { [G1]: 'unhealthy', [G2]: 'healthy' }],
      [4, { [G1]: 'healthy' }],
      [11, {}],
    ]);
    expect(early!.state.activeVia).toEqual([G2]);
    expect(early!.recheckAt).toEqual(at(11));
    expect(late!.state.activeVia).toEqual([G1, G2]);
    expect(late!.switched?.reason).toBe('rejoin');
  });

  it('keeps the set as it was, degraded, when every member fails', () => {
    const [d] = steps(ecmp(), [[1, { [G1]: 'unhealthy', [G2]: 'unhealthy' }]]);
    expect(d!.state.activeVia).toEqual([G1, G2]);
    expect(isDegraded(d!.state)).toBe(true);
  });

  it('uses the first recovered gateway at once when all had failed', () => {
    const [, d] = steps(ecmp(), [
      [1, { [G1]: 'unhealthy', [G2]: 'unhealthy' }],
      [2, { [G2]: 'healthy' }],
    ]);
    expect(d!.state.activeVia).toEqual([G2]);
    expect(isDegraded(d!.state)).toBe(false);
  });
});

describe('a changed policy', () => {
  const switched = () => steps(policy(), [[1, { [G1]: 'unhealthy', [G2]: 'healthy' }]])[0]!.state;

  it('keeps the gateway in use, its health and the last switch', () => {
    const next = carriedFailoverState(
      { policy: policy(), state: switched() },
      policy({ candidates: [G1, G2, G3], holdDownS: 60 }),
      at(5),
    );
    expect(next.activeVia).toEqual([G2]);
    expect(next.health[G1]?.health).toBe('unhealthy');
    expect(next.health[G3]?.health).toBe('unknown');
    expect(next.lastSwitch?.at).toEqual(at(1));
  });

  it('starts over on the first candidate when the one in use is no longer a candidate', () => {
    const next = carriedFailoverState(
      { policy: policy(), state: switched() },
      policy({ candidates: [G1, G3] }),
      at(5),
    );
    expect(next.activeVia).toEqual([G1]);
    expect(next.health[G1]?.health).toBe('unhealthy');
  });

  it('starts a new mode with its own set', () => {
    const next = carriedFailoverState(
      { policy: policy(), state: switched() },
      policy({ mode: 'ecmp' }),
      at(5),
    );
    expect(next.activeVia).toEqual([G1, G2]);
  });
});
