import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { extractResults, parseCallbackJson } from '../../../src/runs/json-extractor.ts';

// Real ansible.posix.json output captured against a lab: see tests/fixtures/ansible-json/README.md
const SAMPLES = path.resolve(import.meta.dirname, '../../fixtures/ansible-json');
const sample = (name: string) => readFileSync(path.join(SAMPLES, name), 'utf8');

function extract(name: string) {
  const doc = parseCallbackJson(sample(name));
  expect(doc, `${name} should parse`).not.toBeNull();
  return extractResults(doc!);
}

describe('parseCallbackJson', () => {
  it('when stdout is the callback document, then it is parsed', () => {
    const doc = parseCallbackJson(sample('ping-ok.json'));
    expect(Object.keys(doc!.stats!)).toEqual(['h1', 'h2', 'h3']);
  });

  it('when something printed text before the document, then the text is skipped', () => {
    const noisy = 'Deprecation notice: something\n[WARNING]: x\n' + sample('ping-ok.json');
    expect(parseCallbackJson(noisy)).toEqual(parseCallbackJson(sample('ping-ok.json')));
  });

  it('when ansible died before printing, then there is no document', () => {
    expect(parseCallbackJson('')).toBeNull();
  });

  it('when ansible was killed mid-document, then there is no document', () => {
    const whole = sample('mixed.json');
    expect(parseCallbackJson(whole.slice(0, whole.length / 2))).toBeNull();
  });

  it('when stdout is JSON but not a callback document, then there is no document', () => {
    expect(parseCallbackJson('{"msg": "hello"}')).toBeNull();
    expect(parseCallbackJson('[1, 2]')).toBeNull();
  });
});

describe('extractResults', () => {
  it('when every host answered ping, then each host is ok and each result carries pong', () => {
    const { summary, results } = extract('ping-ok.json');
    expect(summary).toEqual(
      Object.fromEntries(
        ['h1', 'h2', 'h3'].map((h) => [
          h,
          { status: 'ok', ok: 1, changed: 0, failures: 0, unreachable: 0, skipped: 0, msg: null },
        ]),
      ),
    );
    expect(results).toEqual(
      ['h1', 'h2', 'h3'].map((host) => ({
        host,
        task: 'ping',
        module: 'ansible.builtin.ping',
        status: 'ok',
        changed: false,
        msg: null,
        data: { changed: false, ping: 'pong' },
      })),
    );
  });

  it('when module data is extracted, then ansible bookkeeping, invocation and action are dropped', () => {
    const raw = JSON.parse(sample('ping-ok.json'));
    const h1 = raw.plays[0].tasks[0].hosts.h1;
    expect(h1).toHaveProperty('_ansible_no_log');
    expect(h1).toHaveProperty('invocation');
    expect(h1).toHaveProperty('action');
    const { results } = extract('ping-ok.json');
    expect(Object.keys(results[0]!.data).sort()).toEqual(['changed', 'ping']);
  });

  it('when hosts end ok, changed and failed, then each summary says so with the counts', () => {
    const { summary } = extract('mixed.json');
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
  });

  it('when tasks run on several hosts, then there is one result per host and task, in play order', () => {
    const { results } = extract('mixed.json');
    expect(results.map((r) => `${r.task}/${r.host}/${r.status}`)).toEqual([
      'ping/h1/ok',
      'ping/h2/ok',
      'ping/h3/ok',
      'change where asked/h1/ok',
      'change where asked/h2/changed',
      'change where asked/h3/ok',
      'fail where asked/h1/skipped',
      'fail where asked/h2/skipped',
      'fail where asked/h3/failed',
    ]);
  });

  it('when a task changed something, then its result is changed, keeps the module data, and has no message', () => {
    const { results } = extract('mixed.json');
    const changed = results.find((r) => r.host === 'h2' && r.status === 'changed')!;
    expect(changed.changed).toBe(true);
    expect(changed.msg).toBeNull();
    expect(changed.data).toMatchObject({ cmd: ['echo', 'changed'], rc: 0, stdout: 'changed' });
  });

  it('when a task failed, then its result carries the failure message', () => {
    const { results } = extract('mixed.json');
    expect(results.at(-1)).toMatchObject({
      host: 'h3',
      status: 'failed',
      changed: false,
      msg: 'failing h3 as asked',
    });
  });

  it('when a host could not be reached, then it is unreachable with the ssh message and the others ok', () => {
    const { summary, results } = extract('unreachable.json');
    expect(summary.h2).toMatchObject({ status: 'unreachable', ok: 0, unreachable: 1 });
    expect(summary.h2!.msg).toMatch(/^Data could not be sent to remote host "198\.51\.100\.\d+"/);
    expect(summary.h2!.msg).toMatch(/Connection refused$/);
    expect(summary.h1!.status).toBe('ok');
    expect(summary.h3!.status).toBe('ok');
    expect(results.find((r) => r.host === 'h2')).toMatchObject({
      status: 'unreachable',
      msg: summary.h2!.msg,
      data: { unreachable: true, changed: false },
    });
  });

  it('when a failure was ignored (ignore_errors), then the task result says failed but the host ended without a problem message', () => {
    const { summary, results } = extract('ignored-failure.json');
    expect(results[0]).toMatchObject({
      task: 'failing command, ignored',
      status: 'failed',
      msg: 'non-zero return code',
    });
    expect(results[1]).toMatchObject({ task: 'ping after', status: 'ok' });
    expect(summary.h1).toMatchObject({ status: 'changed', failures: 0, msg: null });
  });

  it('when a message is not a string, then it is kept as JSON; an empty one becomes null', () => {
    const { results } = extractResults({
      plays: [
        {
          tasks: [
            {
              task: { name: 't' },
              hosts: {
                a: { failed: true, msg: { why: 'structured' } },
                b: { failed: true, msg: '' },
                c: { failed: true, stderr: '  boom \n' },
              },
            },
          ],
        },
      ],
      stats: {},
    });
    expect(results.map((r) => r.msg)).toEqual(['{"why":"structured"}', null, 'boom']);
  });

  it('when the document has no plays or stats, then there are no results', () => {
    expect(extractResults({})).toEqual({ summary: {}, results: [] });
  });

  it('when a host ran no task (all skipped), then it is skipped', () => {
    const { summary } = extractResults({ stats: { h1: { ok: 0, skipped: 2 } } });
    expect(summary.h1).toMatchObject({ status: 'skipped', skipped: 2, changed: 0, failures: 0 });
  });
});
