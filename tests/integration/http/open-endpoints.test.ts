import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { load } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, startTestServer, type TestServer } from '../../helpers/server.ts';

describe('health and contract endpoints, given a running server', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });
  const open = (url: string) => server.request('GET', url, { token: null });

  it('when /healthz is fetched, then the process says ok', async () => {
    const res = await open('/healthz');
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('when /readyz is fetched, then it reports the database backend and the ansible version', async () => {
    const res = await open('/readyz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      status: 'ready',
      database: { ok: true, backend: server.services.db.backend },
      ansible: { ok: true, version: expect.stringMatching(/ansible-playbook/) },
    });
  });

  it('when /openapi.yaml is fetched, then it is the contract file byte for byte', async () => {
    const res = await open('/openapi.yaml');
    expect(res.text).toBe(await readFile(path.join(REPO, 'openapi.yaml'), 'utf8'));
  });

  it('when /openapi.json is fetched, then it is the same contract as JSON', async () => {
    const res = await open('/openapi.json');
    const yaml = load(await readFile(path.join(REPO, 'openapi.yaml'), 'utf8'));
    expect(res.body).toEqual(JSON.parse(JSON.stringify(yaml)));
  });

  it('when /docs is fetched, then the page loads only assets served by routeplane itself', async () => {
    const res = await open('/docs');
    const refs = [...res.text.matchAll(/\b(?:src|href)\s*=\s*["']([^"']+)["']/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThanOrEqual(3);
    expect(res.text).not.toMatch(/https?:\/\//);
    for (const ref of refs) {
      expect(ref, `${ref} must be a local path`).toMatch(/^\/(?!\/)/);
      const asset = await open(ref);
      expect(asset.status, ref).toBe(200);
      expect(asset.text.length, ref).toBeGreaterThan(0);
    }
  });

  it('when the docs initializer is fetched, then it points Swagger UI at the local contract', async () => {
    const res = await open('/docs/initializer.js');
    expect(res.text).toContain("url: '/openapi.json'");
    expect(res.text).not.toMatch(/https?:\/\//);
  });
});
