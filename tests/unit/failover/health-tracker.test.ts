import { describe, expect, it } from 'vitest';
import { combinedHealth, HealthTracker } from '../../../src/failover/health-tracker.ts';

const check = { rise: 2, fall: 3 };
const t = (s: number) => new Date(1_000_000 + s * 1000);

describe('HealthTracker', () => {
  it('is unknown until rise answers in a row', () => {
    const h = new HealthTracker();
    expect(h.observe('k', check, 'ok', t(0))).toBeNull();
    expect(h.health('k')).toBe('unknown');
    expect(h.observe('k', check, 'ok', t(1))).toMatchObject({ from: 'unknown', to: 'healthy' });
  });

  it('turns unhealthy only after fall failures in a row', () => {
    const h = new HealthTracker();
    h.observe('k', check, 'ok', t(0));
    h.observe('k', check, 'ok', t(1));
    h.observe('k', check, 'fail', t(2));
    h.observe('k', check, 'fail', t(3));
    expect(h.observe('k', check, 'ok', t(4))).toBeNull();
    h.observe('k', check, 'fail', t(5));
    h.observe('k', check, 'fail', t(6));
    const tr = h.observe('k', check, 'fail', t(7), 'timeout after 1 s');
    expect(tr).toMatchObject({ from: 'healthy', to: 'unhealthy', detail: 'timeout after 1 s' });
  });

  it('is unavailable at once when the check cannot run, never unhealthy', () => {
    const h = new HealthTracker();
    expect(h.observe('k', check, 'unavailable', t(0))?.to).toBe('unavailable');
    expect(h.health('k')).toBe('unavailable');
  });

  it('forgets checks no longer asked for', () => {
    const h = new HealthTracker();
    h.observe('a', check, 'unavailable', t(0));
    h.retain(new Set());
    expect(h.health('a')).toBe('unknown');
  });
});

describe('combinedHealth', () => {
  it('needs every check healthy', () => {
    expect(combinedHealth(['healthy', 'unknown'])).toBe('unknown');
    expect(combinedHealth(['healthy', 'healthy'])).toBe('healthy');
  });
  it('is unhealthy when any check is', () => {
    expect(combinedHealth(['healthy', 'unhealthy', 'unavailable'])).toBe('unhealthy');
  });
  it('is decided by the checks that can run when one cannot', () => {
    expect(combinedHealth(['healthy', 'unavailable'])).toBe('healthy');
    expect(combinedHealth(['unknown', 'unavailable'])).toBe('unknown');
  });
  it('is unavailable when no check can run', () => {
    expect(combinedHealth(['unavailable', 'unavailable'])).toBe('unavailable');
  });
});
