import { describe, expect, it } from 'vitest';
import {
  moduleRoutesPayload,
  ROUTES_MODULE,
  routesOfPayload,
  syncFromRun,
  type SettledRoute,
  type SettleOptions,
} from '../../../src/routes/route-results.ts';
import type { Run, TaskResult } from '../../../src/runs/types.ts';

// The module's output (playbooks/library/routeplane_routes.py) for one host, as the run records it.
const RETRY = new Date('2030-01-01T00:00:10Z');
const RUN_ID = 'r0000000-0000-4000-8000-000000000000';
const ACTIVE = 'a0000000-0000-4000-8000-000000000001';
const DELETED = 'd0000000-0000-4000-8000-000000000002';
const OTHER = 'b0000000-0000-4000-8000-000000000003';

function runWith(
  task: Partial<TaskResult> & { data: Record<string, unknown> },
  over: Partial<Run> = {},
): Run {
  return {
    id: RUN_ID,
    kind: 'apply',
    playbook: 'apply',
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
    results: [
      {
        host: 'h1',
        task: 'Apply routes',
        module: ROUTES_MODULE,
        status: 'ok',
        changed: false,
        msg: null,
        ...task,
      },
    ],
    error: null,
    log: '',
    owner: 'test',
    ...over,
  };
}

const moduleOutput = (over: Record<string, unknown> = {}) => ({
  added: [],
  replaced: [],
  removed: [],
  unchanged_count: 1,
  conflicts: [],
  errors: [],
  ...over,
});

/** A route that should be in the kernel and one leaving it, both being applied. */
const APPLYING: SettledRoute[] = [
  { id: ACTIVE, desired: true, state: 'applying' },
  { id: DELETED, desired: false, state: 'applying' },
];

const sync = (run: Run, rows: SettledRoute[] = APPLYING, opts?: SettleOptions) =>
  syncFromRun(run, new Map([['h1', rows]]), () => RETRY, opts)[0]!;
const updateOf = (r: ReturnType<typeof sync>, id: string) => r.updates.find((u) => u.id === id);

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
    expect(result.updates.map((u) => [u.id, u.state, u.retryAt, u.runId])).toEqual([
      [ACTIVE, 'in_sync', null, RUN_ID],
      [DELETED, 'in_sync', null, RUN_ID],
    ]);
    expect(result.drift).toEqual([]);
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
    expect(updateOf(result, DELETED)).toMatchObject({
      state: 'failed',
      error: reason,
      retryAt: RETRY,
    });
    // The route the host kept as asked is not blamed for another route's removal.
    expect(updateOf(result, ACTIVE)).toMatchObject({ state: 'in_sync', error: null });
  });

  it('when a route could not be added, then that route is failed by id and the host is not', () => {
    const result = sync(
      runWith({
        data: moduleOutput({
          unchanged_count: 0,
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
    expect(updateOf(result, ACTIVE)).toMatchObject({
      state: 'failed',
      error: 'Error: Nexthop has invalid gateway.',
      retryAt: RETRY,
    });
    expect(updateOf(result, DELETED)).toMatchObject({ state: 'in_sync' });
  });

  it('when the host was unreachable, then every settled route is failed with the connection error', () => {
    const msg = 'Failed to connect to the host via ssh: Connection refused';
    const result = sync(runWith({ status: 'unreachable', msg, data: {} }));
    expect(result.hostError).toBe(msg);
    expect(result.updates.map((u) => [u.state, u.error, u.retryAt])).toEqual([
      ['failed', msg, RETRY],
      ['failed', msg, RETRY],
    ]);
  });

  it('when the run was canceled before reaching the host, then every settled route is failed with the run error', () => {
    const result = sync(
      runWith({ data: {} }, { status: 'canceled', error: 'canceled', results: [], summary: {} }),
    );
    expect(result.hostError).toBe('canceled');
    expect(result.updates.map((u) => u.state)).toEqual(['failed', 'failed']);
  });

  it('when a host with no row to settle could not remove a leftover route, then the host is failed so it is retried', () => {
    const run = runWith({
      data: moduleOutput({
        unchanged_count: 0,
        errors: [
          { id: null, op: 'del', to: '203.0.113.32/28', table: 254, metric: 0, error: 'busy' },
        ],
      }),
    });
    expect(sync(run, [])).toEqual({
      host: 'h1',
      hostError: 'could not remove 203.0.113.32/28 (table 254, metric 0): busy',
      updates: [],
      drift: [],
    });
  });

  it('when the module found a route it does not own, then that route is a conflict, not retried', () => {
    const existing = { dst: '203.0.113.0/28', protocol: 'static' };
    const result = sync(
      runWith({
        data: moduleOutput({
          conflicts: [
            {
              id: ACTIVE,
              to: '203.0.113.0/28',
              table: 254,
              metric: 0,
              reason: 'unowned',
              existing,
            },
          ],
        }),
      }),
    );
    expect(result.hostError).toBeNull();
    expect(updateOf(result, ACTIVE)).toEqual({
      id: ACTIVE,
      state: 'conflict',
      error: 'the kernel already has a route for 203.0.113.0/28 that routeplane does not own',
      conflict: { reason: 'unowned', existing },
      retryAt: null,
      runId: RUN_ID,
    });
  });

  it('when a route would capture the management address, then it is a lockout conflict naming that address', () => {
    const result = sync(
      runWith({
        data: moduleOutput({
          conflicts: [
            {
              id: ACTIVE,
              to: '0.0.0.0/0',
              table: 254,
              metric: 0,
              reason: 'lockout',
              management_address: '192.0.2.10',
            },
          ],
        }),
      }),
    );
    expect(updateOf(result, ACTIVE)).toMatchObject({
      state: 'conflict',
      error: 'would capture the management address 192.0.2.10; set force to apply anyway',
      conflict: { reason: 'lockout', managementAddress: '192.0.2.10' },
    });
  });

  it('when the result comes from a task of another name but the routes module, then it is used', () => {
    const result = sync(runWith({ task: 'Apply desired state', data: moduleOutput() }));
    expect(result.hostError).toBeNull();
    expect(result.updates.map((u) => u.state)).toEqual(['in_sync', 'in_sync']);
  });

  it('when a task is named routeplane_routes but ran another module, then its result is not used', () => {
    const result = sync(
      runWith({ task: ROUTES_MODULE, module: 'ansible.builtin.debug', data: moduleOutput() }),
    );
    expect(result.hostError).toBe('apply run succeeded before reaching h1');
    expect(result.updates.map((u) => u.state)).toEqual(['failed', 'failed']);
  });

  it('when a desired route already in sync is not named by the module, then it gets no update', () => {
    const rows: SettledRoute[] = [
      { id: ACTIVE, desired: true, state: 'in_sync' },
      { id: OTHER, desired: true, state: 'applying' },
    ];
    const result = sync(runWith({ data: moduleOutput({ unchanged_count: 2 }) }), rows);
    expect(result.updates.map((u) => [u.id, u.state])).toEqual([[OTHER, 'in_sync']]);
  });

  it('when a route was failed and the module now applied it, then it is in sync again', () => {
    const rows: SettledRoute[] = [{ id: ACTIVE, desired: true, state: 'failed' }];
    const result = sync(
      runWith({ data: moduleOutput({ added: [{ id: ACTIVE, to: '203.0.113.0/28' }] }) }),
      rows,
    );
    expect(result.updates).toEqual([
      { id: ACTIVE, state: 'in_sync', error: null, conflict: null, retryAt: null, runId: RUN_ID },
    ]);
  });

  it('when a converging run added or replaced routes, then they are reported as drift', () => {
    const rows: SettledRoute[] = [
      { id: ACTIVE, desired: true, state: 'in_sync' },
      { id: OTHER, desired: true, state: 'in_sync' },
    ];
    const result = sync(
      runWith({
        data: moduleOutput({
          added: [{ id: ACTIVE, to: '203.0.113.0/28', table: 254, metric: 0 }],
          replaced: [{ id: OTHER, to: '198.51.100.0/24', table: 254, metric: 0 }],
        }),
      }),
      rows,
      { converging: true, repair: true },
    );
    expect(result.drift).toEqual([
      { id: ACTIVE, op: 'added' },
      { id: OTHER, op: 'replaced' },
    ]);
    // Repaired: the routes are in sync as they were, so nothing is rewritten.
    expect(result.updates).toEqual([]);
  });

  it('when the module names its changes by id alone, then a converging run reports them as drift, and a report-only one marks them drifted', () => {
    const rows: SettledRoute[] = [
      { id: ACTIVE, desired: true, state: 'in_sync' },
      { id: OTHER, desired: true, state: 'in_sync' },
    ];
    const run = runWith({ data: moduleOutput({ added: [ACTIVE], replaced: [OTHER] }) });
    expect(sync(run, rows, { converging: true, repair: true }).drift).toEqual([
      { id: ACTIVE, op: 'added' },
      { id: OTHER, op: 'replaced' },
    ]);
    const reported = sync(run, rows, { converging: true, repair: false });
    expect(updateOf(reported, ACTIVE)).toMatchObject({ state: 'drifted' });
    expect(updateOf(reported, OTHER)).toMatchObject({ state: 'drifted' });
  });

  it('when routes become the module payload, then it is one base64 string that reads back as the same routes, and no routes is an empty string', () => {
    const routes = [
      { id: ACTIVE, to: '203.0.113.0/28', table: 254, metric: 0, dev: 'eth0' },
      { id: OTHER, to: '2001:db8:f000::/64', table: 100, metric: 1024, via: '2001:db8::1' },
    ];
    const payload = moduleRoutesPayload(routes);
    expect(payload).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(routesOfPayload(payload)).toEqual(routes);
    expect(moduleRoutesPayload([])).toBe('');
    expect(routesOfPayload('')).toEqual([]);
  });

  it('when a run that carries a write added routes, then they are not drift', () => {
    const rows: SettledRoute[] = [{ id: ACTIVE, desired: true, state: 'applying' }];
    const result = sync(
      runWith({ data: moduleOutput({ added: [{ id: ACTIVE, to: '203.0.113.0/28' }] }) }),
      rows,
      { converging: false, repair: false },
    );
    expect(result.drift).toEqual([]);
    expect(updateOf(result, ACTIVE)).toMatchObject({ state: 'in_sync' });
  });

  it('when a converging run found drift with repair off, then those routes are drifted and not retried', () => {
    const rows: SettledRoute[] = [
      { id: ACTIVE, desired: true, state: 'in_sync' },
      { id: OTHER, desired: true, state: 'in_sync' },
    ];
    const result = sync(
      runWith({ data: moduleOutput({ added: [{ id: ACTIVE, to: '203.0.113.0/28' }] }) }),
      rows,
      { converging: true, repair: false },
    );
    expect(result.hostError).toBeNull();
    expect(result.drift).toEqual([{ id: ACTIVE, op: 'added' }]);
    expect(result.updates).toEqual([
      {
        id: ACTIVE,
        state: 'drifted',
        error: 'missing or altered on the host; REPAIR_DRIFT is off, so it is only reported',
        conflict: null,
        retryAt: null,
        runId: RUN_ID,
      },
    ]);
  });

  it('when a route already drifted is still missing at the next convergence, then it is neither rewritten nor reported again', () => {
    const rows: SettledRoute[] = [{ id: ACTIVE, desired: true, state: 'drifted' }];
    const result = sync(
      runWith({ data: moduleOutput({ added: [{ id: ACTIVE, to: '203.0.113.0/28' }] }) }),
      rows,
      { converging: true, repair: false },
    );
    expect(result.drift).toEqual([]);
    expect(result.updates).toEqual([]);
  });

  it('when a drifted route is put back by a run that carries a write, then it is in sync again', () => {
    const rows: SettledRoute[] = [{ id: ACTIVE, desired: true, state: 'drifted' }];
    const result = sync(
      runWith({ data: moduleOutput({ added: [{ id: ACTIVE, to: '203.0.113.0/28' }] }) }),
      rows,
      { converging: false, repair: false },
    );
    expect(updateOf(result, ACTIVE)).toMatchObject({ state: 'in_sync', runId: RUN_ID });
  });

  it('when a converging run names a change without an id, then it is not drift', () => {
    const rows: SettledRoute[] = [{ id: ACTIVE, desired: true, state: 'in_sync' }];
    const result = sync(
      runWith({ data: moduleOutput({ added: [{ id: null, to: '203.0.113.0/28' }] }) }),
      rows,
      { converging: true, repair: false },
    );
    expect(result.drift).toEqual([]);
    expect(result.updates).toEqual([]);
  });

  it('when several hosts are settled, then each is matched to its own result and retry time', () => {
    const run = runWith({ data: moduleOutput() });
    run.results.push({
      host: 'h2',
      task: 'Apply routes',
      module: ROUTES_MODULE,
      status: 'unreachable',
      changed: false,
      msg: 'no route to host',
      data: {},
    });
    const h2Retry = new Date('2030-01-01T00:01:00Z');
    const results = syncFromRun(
      run,
      new Map([
        ['h1', [{ id: ACTIVE, desired: true, state: 'applying' }]],
        ['h2', [{ id: OTHER, desired: true, state: 'applying' }]],
      ]),
      (h) => (h === 'h2' ? h2Retry : RETRY),
    );
    expect(
      results.map((r) => [r.host, r.hostError, r.updates[0]!.state, r.updates[0]!.retryAt]),
    ).toEqual([
      ['h1', null, 'in_sync', null],
      ['h2', 'no route to host', 'failed', h2Retry],
    ]);
  });
});
