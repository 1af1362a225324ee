import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

describe('/readyz of a real server, when its dependencies fail', () => {
  let dir: string;
  let counter: string;
  let server: TestServer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'readyz-test-'));
    counter = path.join(dir, 'spawned');
    // An ansible-playbook that cannot run: it says why on stderr (with a path) and fails.
    const broken = path.join(dir, 'ansible-playbook');
    await writeFile(
      broken,
      `#!/bin/bash\necho x >> ${counter}\necho "ERROR! /opt/secret-tree/lib is unreadable" >&2\nexit 1\n`,
    );
    await chmod(broken, 0o755);
    server = await startTestServer({ ANSIBLE_PLAYBOOK: broken });
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const probe = () => server.request('GET', '/readyz', { token: null });

  it('when ansible-playbook fails, then 40 probes without auth are not ready, name no error text, and start it once', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, probe));
    for (let i = 0; i < 20; i++) answers.push(await probe());
    for (const res of answers) {
      expect(res.status).toBe(503);
      expect(res.body).toEqual({
        status: 'not_ready',
        database: { ok: true, backend: server.services.db.backend },
        ansible: { ok: false, error: 'ansible-playbook cannot run' },
      });
    }
    expect((await readFile(counter, 'utf8')).trim().split('\n')).toHaveLength(1);
    expect(server.logs.some((l) => l.includes('readiness.ansible_failed'))).toBe(true);
  });

  it('when the database is gone, then it is not ready and the body has no database error text', async () => {
    await server.services.db.close();
    const res = await probe();
    expect(res.status).toBe(503);
    expect(res.body.status).toBe('not_ready');
    expect(res.body.database).toEqual({
      ok: false,
      backend: server.services.db.backend,
      error: 'database unreachable',
    });
  });
});
