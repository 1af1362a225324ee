import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  collectJsonlEvent,
  extractJsonl,
  extractResults,
  parseCallbackJson,
  parseJsonlEvent,
  ResultsCollector,
} from '../../../src/runs/json-extractor.ts';
import type { TaskResult } from '../../../src/runs/types.ts';

// Real ansible.posix.jsonl output captured against a lab: see tests/fixtures/ansible-json/README.md
const SAMPLES = path.resolve(import.meta.dirname, '../../fixtures/ansible-json');
const sample = (name: string) => readFileSync(path.join(SAMPLES, name), 'utf8');

// Hosts finish a task in any order; the order of tasks is the playbook's.
const byTaskThenHost = (results: TaskResult[]) =>
  results
    .map((r, i) => ({ r, i }))
    .sort((a, b) => {
      const ta = results.findIndex((x) => x.task === a.r.task);
      const tb = results.findIndex((x) => x.task === b.r.task);
      return ta - tb || a.r.host.localeCompare(b.r.host) || a.i - b.i;
    })
    .map(({ r }) => r);

// The two samples of a fixture come from two runs: times and lab addresses differ.
const VOLATILE = new Set(['start', 'end', 'delta']);
function stable<T>(value: T): T {
  return JSON.parse(
    JSON.stringify(value, (k, v: unknown) => (VOLATILE.has(k) ? undefined : v)).replace(
      /198\.51\.100\.\d+/g,
      '198.51.100.x',
    ),
  ) as T;
}

describe('extractJsonl, on real ansible.posix.jsonl output', () => {
  for (const name of ['ping-ok', 'mixed', 'unreachable', 'ignored-failure']) {
    it(`when ${name} is read line by line, then it gives what the json callback's document of the same run gives`, () => {
      const lines = extractJsonl(sample(`${name}.jsonl`));
      const doc = extractResults(parseCallbackJson(sample(`${name}.json`))!);
      expect(lines.complete).toBe(true);
      expect(stable(lines.summary)).toEqual(stable(doc.summary));
      expect(stable(byTaskThenHost(lines.results))).toEqual(stable(byTaskThenHost(doc.results)));
    });
  }

  it('when hosts end ok, changed and failed, then each summary says so with the counts', () => {
    const { summary, results } = extractJsonl(sample('mixed.jsonl'));
    expect(summary.h1).toMatchObject({ status: 'ok', ok: 2, changed: 0, skipped: 1, msg: null });
    expect(summary.h2).toMatchObject({ status: 'changed', ok: 2, changed: 1, msg: null });
    expect(summary.h3).toEqual({
      status: 'failed',
      ok: 2,
      changed: 0,
      failures: 1,
      unreachable: 0,
      skipped: 0,
      msg: 'failing h3 as asked',
    });
    expect(results).toHaveLength(9);
    expect(
      results
        .filter((r) => r.task === 'fail where asked')
        .map((r) => r.status)
        .sort(),
    ).toEqual(['failed', 'skipped', 'skipped']);
  });

  it('when a host could not be reached, then it is unreachable with the ssh message', () => {
    const { summary, results } = extractJsonl(sample('unreachable.jsonl'));
    expect(summary.h2).toMatchObject({ status: 'unreachable', ok: 0, unreachable: 1 });
    expect(summary.h2!.msg).toMatch(/Connection refused$/);
    expect(results.find((r) => r.host === 'h2')).toMatchObject({
      status: 'unreachable',
      data: { unreachable: true, changed: false },
    });
  });

  it('when the output stops before the recap (ansible killed), then the results so far are kept and it is incomplete', () => {
    const lines = sample('mixed.jsonl').split('\n');
    const cut = lines.slice(0, 5).join('\n') + '\n' + lines[5]!.slice(0, 40);
    const out = extractJsonl(cut);
    expect(out.complete).toBe(false);
    expect(out.summary).toEqual({});
    expect(out.results.length).toBeGreaterThan(0);
    expect(out.results.every((r) => r.task === 'ping')).toBe(true);
  });

  it('when other text is mixed into stdout, then only the events count', () => {
    const noisy =
      'Deprecation notice\n[WARNING]: x\n{"not":"an event"}\n' + sample('ping-ok.jsonl');
    expect(extractJsonl(noisy)).toEqual(extractJsonl(sample('ping-ok.jsonl')));
  });
});

describe('parseJsonlEvent', () => {
  it('when a line is an event, then it is parsed; anything else is null', () => {
    expect(parseJsonlEvent('{"_event":"v2_playbook_on_stats","stats":{}}')).toMatchObject({
      _event: 'v2_playbook_on_stats',
    });
    expect(parseJsonlEvent('')).toBeNull();
    expect(parseJsonlEvent('[WARNING]: {"_event": "x"}')).toBeNull();
    expect(parseJsonlEvent('{"_event": 3}')).toBeNull();
    expect(parseJsonlEvent('{"_event": "v2_runner_on_ok"')).toBeNull();
  });

  it('when a result event is collected, then its one host and task become one result', () => {
    const c = new ResultsCollector();
    collectJsonlEvent(c, {
      _event: 'v2_runner_on_failed',
      task: { name: 't' },
      hosts: { a: { failed: true, msg: 'no', action: 'x', _ansible_no_log: false } },
    });
    collectJsonlEvent(c, { _event: 'v2_playbook_on_task_start', task: { name: 'u' }, hosts: {} });
    collectJsonlEvent(c, { _event: 'v2_playbook_on_stats', stats: { a: { failures: 1 } } });
    expect(c.extracted()).toEqual({
      results: [
        {
          host: 'a',
          task: 't',
          module: 'x',
          status: 'failed',
          changed: false,
          msg: 'no',
          data: { failed: true, msg: 'no' },
        },
      ],
      summary: {
        a: {
          status: 'failed',
          ok: 0,
          changed: 0,
          failures: 1,
          unreachable: 0,
          skipped: 0,
          msg: 'no',
        },
      },
    });
  });
});
