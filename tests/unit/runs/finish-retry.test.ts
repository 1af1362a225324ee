import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/logger.ts';
import { RunsService } from '../../../src/runs/runs-service.ts';
import type { NewRun, RunsStore } from '../../../src/runs/runs-store.ts';
import type { Run, RunOutcome } from '../../../src/runs/types.ts';
import { CountingRunner } from '../../helpers/runs.ts';

/** An in-memory runs store whose finish() fails while `failures` is above zero. */
class FlakyStore {
  readonly rows = new Map<string, Run>();
  failures = 0;
  finishCalls = 0;

  async insert(r: NewRun): Promise<Run> {
    const run: Run = {
      ...r,
      status: 'queued',
      rc: null,
      createdAt: new Date(),
      startedAt: null,
      finishedAt: null,
      summary: {},
      results: [],
      error: null,
      log: '',
    };
    this.rows.set(r.id, run);
    return { ...run };
  }
  async markRunning(id: string) {
    this.rows.get(id)!.status = 'running';
  }
  async recordProcess() {}
  async get(id: string) {
    const r = this.rows.get(id);
    return r ? { ...r } : null;
  }
  async finish(id: string, o: RunOutcome): Promise<Run | null> {
    this.finishCalls++;
    if (this.failures > 0) {
      this.failures--;
      throw new Error('connection terminated unexpectedly');
    }
    const r = this.rows.get(id)!;
    if (r.status !== 'queued' && r.status !== 'running') return null;
    Object.assign(r, { ...o, finishedAt: new Date() });
    return { ...r };
  }
}

function service(store: FlakyStore) {
  const s = new RunsService(
    { maxConcurrentRuns: 2, allowLocalWrites: false, playbooksDir: '/nonexistent' },
    store as unknown as RunsStore,
    new CountingRunner(),
    null as never,
    null as never,
    { id: 'me' } as never,
    createLogger('silent'),
  );
  s.finishes.backoffMs = [1, 1, 1];
  const hooked: Run[] = [];
  s.onRunFinished(async (run) => void hooked.push(run));
  return { s, hooked };
}

const request = {
  kind: 'playbook' as const,
  playbookName: 'ping',
  playbookRoot: '/nonexistent',
  playbookFile: 'ping.yml',
  hosts: ['h1'],
  limit: ['h1'],
  extravars: {},
  actor: { name: 'admin', role: 'admin' } as never,
};

describe('recording the end of a run while the database fails', () => {
  it('when the first finishes fail, then they are retried and the run ends recorded, hooks run once', async () => {
    const store = new FlakyStore();
    store.failures = 2;
    const { s, hooked } = service(store);
    const { run, done } = await s.start(request);
    const finished = await done;
    expect(store.finishCalls).toBe(3);
    expect(finished).toMatchObject({ id: run.id, status: 'succeeded', rc: 0 });
    expect(finished.finishedAt).toBeInstanceOf(Date);
    expect(store.rows.get(run.id)!.status).toBe('succeeded');
    expect(hooked.map((r) => [r.id, r.status])).toEqual([[run.id, 'succeeded']]);
    expect(s.finishes.pendingCount).toBe(0);
  });

  it('when every bounded retry fails, then hooks and waiters still get the ended run, and the record holds once the database is back', async () => {
    const store = new FlakyStore();
    store.failures = 1_000;
    const { s, hooked } = service(store);
    const { run, done } = await s.start(request);
    const finished = await done;
    expect(finished).toMatchObject({ id: run.id, status: 'succeeded', rc: 0 });
    expect(hooked.map((r) => r.status)).toEqual(['succeeded']);
    expect(s.activeCount).toBe(0);
    expect(store.rows.get(run.id)!.status).toBe('running');
    expect(s.finishes.pendingCount).toBe(1);

    await s.finishes.retryPending();
    expect(store.rows.get(run.id)!.status).toBe('running');
    store.failures = 0;
    await s.finishes.retryPending();
    expect(store.rows.get(run.id)).toMatchObject({ status: 'succeeded', rc: 0 });
    expect(s.finishes.pendingCount).toBe(0);
  });

  it('when the service shuts down with an end unrecorded, then it tries once more', async () => {
    const store = new FlakyStore();
    store.failures = 4; // 1 + 3 bounded retries
    const { s } = service(store);
    const { run, done } = await s.start(request);
    await done;
    expect(s.finishes.pendingCount).toBe(1);
    await s.shutdown(100);
    expect(store.rows.get(run.id)!.status).toBe('succeeded');
    expect(s.finishes.pendingCount).toBe(0);
  });
});
