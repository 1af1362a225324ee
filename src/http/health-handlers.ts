import type { Backend } from '../db/database.ts';
import type { Logger } from '../logger.ts';
import type { Operations } from './operations.ts';

export interface ReadinessProbe {
  database(): Promise<{ ok: boolean; backend: Backend; error?: string }>;
  ansible(): Promise<{ ok: boolean; version?: string; error?: string }>;
}

/** How long a failed ansible-playbook probe is answered from memory before it is tried again. */
export const ANSIBLE_RETRY_MS = 30_000;

// What /readyz (open to anyone) says about a failure: a fixed text, never the error itself,
// which can name hosts, users, paths or a database's own words. The log has the detail.
const DATABASE_DOWN = 'database unreachable';
const ANSIBLE_DOWN = 'ansible-playbook cannot run';

export interface ReadinessSources {
  backend: Backend;
  ping(): Promise<void>;
  /** ansible-playbook --version; spawns a process. */
  version(): Promise<string>;
  logger: Logger;
  retryMs?: number;
  now?: () => number;
}

/**
 * Readiness with bounded cost per probe, whatever the probe rate: one database ping in flight
 * at a time (concurrent probes share it); ansible-playbook's version probed once while it
 * works (it does not change under a running process) and, when it failed, at most once per
 * `retryMs`, so a load balancer probing a broken install never starts a process per probe.
 */
export function readinessProbe(src: ReadinessSources): ReadinessProbe {
  const retryMs = src.retryMs ?? ANSIBLE_RETRY_MS;
  const now = src.now ?? Date.now;
  let ping: Promise<{ ok: boolean; backend: Backend; error?: string }> | null = null;
  let databaseWasOk = true;
  let version: Promise<string> | null = null;
  let failedAt: number | null = null;
  return {
    database: () =>
      (ping ??= (async () => {
        try {
          await src.ping();
          databaseWasOk = true;
          return { ok: true, backend: src.backend };
        } catch (err) {
          if (databaseWasOk) {
            src.logger.warn({ event: 'readiness.database_failed', err }, 'database not reachable');
          }
          databaseWasOk = false;
          return { ok: false, backend: src.backend, error: DATABASE_DOWN };
        } finally {
          ping = null;
        }
      })()),
    ansible: async () => {
      if (version === null || (failedAt !== null && now() - failedAt >= retryMs)) {
        failedAt = null;
        version = src.version();
        version.catch((err: unknown) => {
          failedAt = now();
          src.logger.warn(
            { event: 'readiness.ansible_failed', err, retry_in_ms: retryMs },
            'ansible-playbook cannot run',
          );
        });
      }
      try {
        return { ok: true, version: await version };
      } catch {
        return { ok: false, error: ANSIBLE_DOWN };
      }
    },
  };
}

type HealthOperations = Pick<Operations, 'getHealth' | 'getReadiness'>;

export function healthHandlers(probe: ReadinessProbe): HealthOperations {
  return {
    // GET /healthz
    getHealth: (_req, res) => {
      res.json({ status: 'ok' });
    },
    // GET /readyz: open to anyone; ready or not, which dependency, never an error's own text.
    getReadiness: async (_req, res) => {
      const [database, ansible] = await Promise.all([probe.database(), probe.ansible()]);
      const ready = database.ok && ansible.ok;
      res.status(ready ? 200 : 503).json({
        status: ready ? 'ready' : 'not_ready',
        database: database.ok
          ? { ok: true, backend: database.backend }
          : { ok: false, backend: database.backend, error: DATABASE_DOWN },
        ansible: ansible.ok
          ? { ok: true, ...(ansible.version ? { version: ansible.version } : {}) }
          : { ok: false, error: ANSIBLE_DOWN },
      });
    },
  };
}
