import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import { useTestServer } from '../../helpers/server.ts';

// Real ansible-playbook against one lab host: what a request puts in extravars must reach the
// playbook as characters, never as a template Ansible evaluates on the controller.
const T = 90_000;

interface Result {
  host: string;
  task: string;
  status: string;
  data: Record<string, unknown>;
}

describe('extravars are data, never templates', { timeout: T }, () => {
  const fleet = useLab(1);
  const server = useTestServer(() => ({ INVENTORY: fleet.lab.inventoryPath }), T);
  const marker = `/tmp/routeplane-pwned-${process.pid}`;
  const payload = (n: number) => `{{ lookup('pipe', 'id > ${marker}-${n}') }}`;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let run: any;

  beforeAll(async () => {
    const res = await server.request('POST', '/v1/runs?wait=80', {
      body: {
        playbook: 'echo',
        limit: ['h1'],
        extravars: {
          text: payload(1),
          items_list: [payload(2), { nested: payload(3) }],
          options: { key: payload(4), deeper: [payload(5)] },
          count: 41,
        },
      },
    });
    expect(res.status, res.text).toBe(201);
    run = res.body;
  }, T);

  afterAll(async () => {
    for (let n = 1; n <= 5; n++) await rm(`${marker}-${n}`, { force: true });
  });

  const printed = (task: string) =>
    (run.results as Result[]).find((r) => r.host === 'h1' && r.task === task)?.data.msg;

  it('when the run ends, then it succeeded on the host', () => {
    expect(run.status).toBe('succeeded');
    expect(run.summary.h1.status).toBe('ok');
  });

  it('when a declared string holds a lookup, then the playbook prints it literally, braces included', () => {
    expect(printed('echo text')).toBe(payload(1));
  });

  it('when the lookup is nested in a list, then it prints literally', () => {
    expect(printed('echo items')).toEqual([payload(2), { nested: payload(3) }]);
  });

  it('when the lookup is nested in a dict, then it prints literally', () => {
    expect(printed('echo options')).toEqual({ key: payload(4), deeper: [payload(5)] });
  });

  it('when a declared integer is used in arithmetic, then it is still a number', () => {
    expect(printed('echo count')).toBe('42');
  });

  it('when the run is over, then no lookup ran on the controller: no file was written', () => {
    for (let n = 1; n <= 5; n++) expect(existsSync(`${marker}-${n}`)).toBe(false);
  });
});
