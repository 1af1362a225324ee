import type { Schemas } from '../http/api.ts';
import type { Operations } from '../http/operations.ts';
import { actorOf } from '../http/security.ts';
import { presentPlaybook, presentRun } from './runs-presenter.ts';
import type { RunsService } from './runs-service.ts';
import type { RunKind, RunStatus } from './types.ts';

type RunOperations = Pick<
  Operations,
  'listPlaybooks' | 'listRuns' | 'createRun' | 'getRun' | 'cancelRun'
>;

export function runsHandlers(runs: RunsService): RunOperations {
  return {
    // GET /v1/playbooks
    listPlaybooks: async (_req, res) => {
      const items = await runs.playbooks();
      res.json({ items: items.map(presentPlaybook) } satisfies Schemas['PlaybookList']);
    },

    // GET /v1/runs
    listRuns: async (req, res) => {
      const q = req.query as Record<string, unknown>;
      const page = { limit: Number(q.limit ?? 50), offset: Number(q.offset ?? 0) };
      const { items, total } = await runs.list({
        status: q.status as RunStatus | undefined,
        kind: q.kind as RunKind | undefined,
        host: q.host as string | undefined,
        playbook: q.playbook as string | undefined,
        ...page,
      });
      res.json({ items: items.map((run) => presentRun(run, false)), total, ...page });
    },

    // POST /v1/runs
    createRun: async (req, res) => {
      const body = req.body as Schemas['CreateRunRequest'];
      const { run, done } = await runs.startCatalogRun(body, actorOf(req));
      const waitMs = Number(req.query.wait ?? 0) * 1000;
      const current = await runs.waitFor(run.id, done, waitMs);
      const ended = current.finishedAt !== null;
      if (!ended) res.location(`/v1/runs/${run.id}`);
      res.status(ended ? 201 : 202).json(presentRun(current, true));
    },

    // GET /v1/runs/{id}
    getRun: async (req, res) => {
      res.json(presentRun(await runs.get(req.params.id!), true));
    },

    // POST /v1/runs/{id}/cancel
    cancelRun: async (req, res) => {
      res.json(presentRun(await runs.cancel(req.params.id!), true));
    },
  };
}
