import { describe, expect, it } from 'vitest';
import type { Route } from '../../../src/cli/api-client.ts';
import {
  cell,
  formatFields,
  formatRoute,
  formatTable,
  syncProblem,
} from '../../../src/cli/output.ts';

function aRoute(overrides: Partial<Route> = {}): Route {
  return {
    id: '9b2f3c1e-5d4a-4f6b-8c7d-0e1f2a3b4c5d',
    host: 'h1',
    to: '203.0.113.0/24',
    via: '198.51.100.14',
    dev: null,
    metric: 0,
    table: 254,
    scope: null,
    src: null,
    onlink: false,
    force: false,
    create_at: null,
    delete_at: '2026-11-24T17:00:00.000Z',
    comment: 'experiment 42',
    status: 'active',
    sync: {
      state: 'in_sync',
      error: null,
      conflict: null,
      retry_at: null,
      synced_at: '2026-11-24T09:00:01.123Z',
      run_id: '3f1e8d52-8f3c-4e55-9d0e-2f4b8d1c9a10',
    },
    created_by: 'alice',
    created_at: '2026-11-23T15:00:00.000Z',
    updated_at: '2026-11-24T09:00:00.000Z',
    removed_at: null,
    removed_reason: null,
    removed_by: null,
    ...overrides,
  };
}

describe('cell', () => {
  it('when a value is null, empty or an empty list, then it shows as -', () => {
    expect([cell(null), cell(undefined), cell(''), cell([])]).toEqual(['-', '-', '-', '-']);
  });

  it('when a value is a timestamp with milliseconds, then they are dropped', () => {
    expect(cell('2026-11-24T09:00:01.123Z')).toBe('2026-11-24T09:00:01Z');
  });

  it('when a value holds control characters, then none of them reaches the terminal', () => {
    const shown = cell('evil\u001b[2Jcomment\nsecond line\u0007');
    // eslint-disable-next-line no-control-regex
    expect(shown).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    expect(shown).toContain('comment second line');
  });

  it('when a value is a boolean or a list, then it reads as yes/no or comma-separated', () => {
    expect([cell(true), cell(false), cell(['lab', 'web'])]).toEqual(['yes', 'no', 'lab,web']);
  });
});

describe('formatTable', () => {
  it('when cells differ in width, then every column starts at the same offset', () => {
    const text = formatTable(
      ['ID', 'TO', 'STATUS'],
      [
        ['a', '203.0.113.0/24', 'active'],
        ['bbbbbb', '2001:db8:f000::/48', null],
      ],
    );
    const lines = text.trimEnd().split('\n');
    expect(lines).toEqual([
      'ID      TO                  STATUS',
      'a       203.0.113.0/24      active',
      'bbbbbb  2001:db8:f000::/48  -',
    ]);
  });

  it('when a cell is very long, then the table clips it and keeps its columns', () => {
    const text = formatTable(['X', 'Y'], [['x'.repeat(200), 'y']]);
    expect(text.split('\n')[1]!.length).toBeLessThan(70);
    expect(text).toContain('...');
  });
});

describe('formatFields', () => {
  it('when keys differ in length, then the values line up', () => {
    expect(
      formatFields([
        ['id', 'a'],
        ['created_by', 'alice'],
      ]),
    ).toBe('id:          a\ncreated_by:  alice\n');
  });
});

describe('formatRoute and syncProblem', () => {
  it('when the route is in sync, then it shows its fields and no problem', () => {
    const text = formatRoute(aRoute());
    expect(text).toMatch(/^to:\s+203\.0\.113\.0\/24$/m);
    expect(text).toMatch(/^sync:\s+in_sync$/m);
    expect(text).toMatch(/^delete_at:\s+2026-11-24T17:00:00Z$/m);
    expect(text).not.toContain('sync_problem');
    expect(syncProblem(aRoute())).toBeNull();
  });

  it('when the apply failed, then the host error and the retry time are named', () => {
    const route = aRoute({
      sync: {
        ...aRoute().sync,
        state: 'failed',
        error: 'Connection refused',
        retry_at: '2026-11-24T09:01:00.000Z',
      },
    });
    expect(syncProblem(route)).toBe(
      'apply failed on h1: Connection refused; retried at 2026-11-24T09:01:00Z',
    );
    expect(formatRoute(route)).toMatch(/^sync_problem:\s+apply failed on h1/m);
  });

  it('when the route would lock routeplane out, then the message says how to force it', () => {
    const route = aRoute({
      sync: {
        ...aRoute().sync,
        state: 'conflict',
        conflict: { reason: 'lockout', management_address: '198.51.100.1' },
      },
    });
    expect(syncProblem(route)).toMatch(/management address 198\.51\.100\.1.*--force/);
  });

  it('when a foreign route holds the destination, then the conflict says so', () => {
    const route = aRoute({
      sync: { ...aRoute().sync, state: 'conflict', conflict: { reason: 'unowned' } },
    });
    expect(syncProblem(route)).toMatch(/does not own/);
  });

  it('when the route was removed, then when, why and by whom are shown', () => {
    const text = formatRoute(
      aRoute({
        status: 'deleted',
        removed_at: '2026-11-24T10:00:00.000Z',
        removed_reason: 'deleted',
        removed_by: 'bob',
      }),
    );
    expect(text).toMatch(/^removed_reason:\s+deleted$/m);
    expect(text).toMatch(/^removed_by:\s+bob$/m);
  });
});
