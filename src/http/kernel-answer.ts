import type { Response } from 'express';
import type { Settlement } from '../reconciler/reconciler.ts';

/** An object of any kind a write waits for: where it lives and how far its sync got. */
export interface SyncedObject {
  host: string;
  sync: { state: string };
}

/** How one kind answers for its objects. */
export interface KindAnswers<
  T extends SyncedObject,
  B extends { sync: { run_id: string | null } },
> {
  present(obj: T): B;
  /** The 502 for an object whose apply failed. */
  failure(obj: T): Error;
}

/** 202, pointing at a run carrying the change when one has started. */
export function sendPending(res: Response, settlement: Settlement, host?: string): void {
  const ids = settlement.runIds;
  const runId = (host ? ids.get(host) : undefined) ?? [...ids.values()].find((id) => id);
  if (runId) res.location(`/v1/runs/${runId}`);
  res.status(202);
}

/** The object's body; while a run is still carrying it, that run's id in `sync.run_id`. */
export function presentCarried<
  T extends SyncedObject,
  B extends { sync: { run_id: string | null } },
>(kind: KindAnswers<T, B>, obj: T, settlement: Settlement): B {
  const body = kind.present(obj);
  const runId = settlement.runIds.get(obj.host);
  if (!settlement.settled && obj.sync.state === 'applying' && runId) body.sync.run_id = runId;
  return body;
}

/** A write of one object, answered once its run has ended (or 202 while it is still going). */
export function answerOne<T extends SyncedObject, B extends { sync: { run_id: string | null } }>(
  res: Response,
  kind: KindAnswers<T, B>,
  obj: T,
  settlement: Settlement,
  okStatus: number,
): void {
  if (!settlement.settled) sendPending(res, settlement, obj.host);
  else if (obj.sync.state === 'failed') throw kind.failure(obj);
  else res.status(okStatus);
  res.json(presentCarried(kind, obj, settlement));
}

/** How many objects are in each sync state. */
export function syncCounts(objs: SyncedObject[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of objs) counts[o.sync.state] = (counts[o.sync.state] ?? 0) + 1;
  return counts;
}
