import { Router } from 'express';
import type { Backend } from '../db/database.ts';

export interface ReadinessProbe {
  database(): Promise<{ ok: boolean; backend: Backend; error?: string }>;
  ansible(): Promise<{ ok: boolean; version?: string; error?: string }>;
}

export function healthHandlers(probe: ReadinessProbe): Router {
  const r = Router();
  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  r.get('/readyz', async (_req, res) => {
    const [database, ansible] = await Promise.all([probe.database(), probe.ansible()]);
    const ready = database.ok && ansible.ok;
    res
      .status(ready ? 200 : 503)
      .json({ status: ready ? 'ready' : 'not_ready', database, ansible });
  });
  return r;
}
