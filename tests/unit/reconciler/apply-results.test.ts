import { describe, expect, it } from 'vitest';
import { APPLY_TASK, syncFromRun } from '../../../src/reconciler/apply-results.ts';
import type { Run, TaskResult } from '../../../src/runs/types.ts';

// The module's output (playbooks/library/routeplane_routes.py) for one host, as the run records it.
const RETRY = new Date('2030-01-01T00:00:10Z');
const ACTIVE = 'a0000000-0000-4000-8000-000000000001';
const DELETED = 'd0000000-0000-4000-8000-000000000002';

function runWith(task: Partial<TaskResult> & { data: Record<string, unknown> }): Run {
  return {
    id: 'r0000000-0000-4000-8000-000000000000',
    kind: 'apply',
    playbook: 'apply_routes',
    hosts: ['h1'],
    limit: ['h1'],
    status: 'succeeded',
    requestedBy: 'reconciler',
    rc: 0,
    createdAt: new Date(),
    startedAt: new Date(),
    finishedAt: new Date(),
    summary: {
      h1: { status: 'ok', ok: 1, changed: 0, failures: 0, unreachable: 0, skipped: 0, msg: null },
    },
    results: [{ host: 'h1', task: APPLY_TASK, status: 'ok', changed: false, msg: null, ...task }],
    error: null,
    log: '',
    owner: 'test',
  };
}

const moduleOutput = (over: Record<string, unknown> = {}) => ({
  added: [],
  replaced: [],
  removed: [],
  unchanged: [{ id: ACTIVE, to: '203.0.113.0/28', table: 254, metric: 0 }],
  conflicts: [],
  errors: [],
  ...over,
});

const sync = (run: Run) => syncFromRun(run, new Map([['h1', [ACTIVE, DELETED]]]), () => RETRY)[0]!;
const stateOf = (r: ReturnType<typeof sync>, id: string) => r.updates.find((u) => u.id === id);

describe('syncFromRun', () => {
  it('when the module applied everything, then every settled route is in sync and the host has no error', () => {
    const result = sync(
      runWith({
        data: moduleOutput({
          removed: [{ id: null, to: '203.0.113.16/28', table: 254, metric: 0 }],
        }),
      }),
    );
    expect(result.hostError).toBeNull();
    expect(result.updates.map((u) => [u.id, u.state, u.retryAt])).toEqual([
      [ACTIVE, 'in_sync', null],
      [DELETED, 'in_sync', null],
    ]);
  });

  it('when a removal failed, then the host is failed and the route leaving the kernel is failed with the reason, to be retried', () => {
    const result = sync(
      runWith({
        data: moduleOutput({
          errors: [
            {
              id: null,
              op: 'del',
              to: '203.0.113.16/28',
              table: 254,
              metric: 0,
              error: 'RTNETLINK answers: No such process',
            },
          ],
        }),
      }),
    );
    const reason =
      'could not remove 203.0.113.16/28 (table 254, metric 0): RTNETLINK answers: No such process';
    expect(result.hostError).toBe(reason);
    expect(stateOf(result, DELETED)).toMatchObject({
      state: 'failed',
      error: reason,
      retryAt: RETRY,
    });
    // The route the host kept as asked is not blamed for another route's removal.
    expect(stateOf(result, ACTIVE)).toMatchObject({ state: 'in_sync', error: null });
  });

  it('when a route could not be added, then that route is failed by id and the host is not', () => {
    const result = sync(
      runWith({
        data: moduleOutput({
          unchanged: [],
          errors: [
            {
              id: ACTIVE,
              op: 'add',
              to: '203.0.113.0/28',
              table: 254,
              metric: 0,
              error: 'Error: Nexthop has invalid gateway.',
            },
          ],
        }),
      }),
    );
    expect(result.hostError).toBeNull();
    expect(stateOf(result, ACTIVE)).toMatchObject({
      state: 'failed',
      error: 'Error: Nexthop has invalid gateway.',
      retryAt: RETRY,
    });
    expect(stateOf(result, DELETED)).toMatchObject({ state: 'in_sync' });
  });

  it('when the host was unreachable, then every settled route is failed with the connection error', () => {
    const msg = 'Failed to connect to the host via ssh: Connection refused';
    const result = sync(runWith({ status: 'unreachable', msg, data: {} }));
    expect(result.hostError).toBe(msg);
    expect(result.updates.map((u) => [u.state, u.error])).toEqual([
      ['failed', msg],
      ['failed', msg],
    ]);
  });

  it('when a host with no row to settle could not remove a leftover route, then the host is failed so it is retried', () => {
    const run = runWith({
      data: moduleOutput({
        unchanged: [],
        errors: [
          { id: null, op: 'del', to: '203.0.113.32/28', table: 254, metric: 0, error: 'busy' },
        ],
      }),
    });
    const [result] = syncFromRun(run, new Map([['h1', []]]), () => RETRY);
    expect(result).toEqual({
      host: 'h1',
      hostError: 'could not remove 203.0.113.32/28 (table 254, metric 0): busy',
      updates: [],
    });
  });
});
