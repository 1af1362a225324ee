import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../../src/auth/token-registry.ts';
import { execa } from 'execa';
import { CountingRunner } from '../../helpers/runs.ts';
import { REPO, startTestServer, TOKENS, type TestServer } from '../../helpers/server.ts';
import {
  everyMessage,
  messageSchema,
  openSocket,
  refusal,
  type Message,
} from '../../helpers/ws-client.ts';

// The protocol alone: no ansible (a counting runner), so every message comes from API writes.
const INVENTORY = '[fleet]\nws1\nws2\n';

describe('the WebSocket at /v1/ws', () => {
  const runner = new CountingRunner();
  let dir: string;
  let tokensFile: string;
  let server: TestServer;

  const digestLine = (name: string, role: string, token: string) =>
    `${name}:${role}:${sha256(token).toString('hex')}\n`;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ws-protocol-'));
    await writeFile(path.join(dir, 'hosts'), INVENTORY);
    tokensFile = path.join(dir, 'tokens');
    await writeFile(tokensFile, digestLine('dash', 'viewer', 'dashboard-token-0123456789'));
    server = await startTestServer(
      {
        INVENTORY: path.join(dir, 'hosts'),
        API_TOKENS_FILE: tokensFile,
        CORS_ORIGINS: 'https://deployer.example',
        WS_REPLAY: '5',
      },
      { runner },
    );
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const addRoute = async (host: string, to: string) => {
    const res = await server.request('POST', '/v1/routes?wait=0', {
      body: { host, to, dev: 'eth0' },
      token: 'operator',
    });
    expect([201, 202], res.text).toContain(res.status);
    return res.body.id as string;
  };

  it('refuses an upgrade without a token with 401', async () => {
    expect(await refusal(server.url, { token: null })).toBe(401);
  });

  it('refuses an upgrade with an unknown token with 401', async () => {
    const status = await refusal(server.url, {
      token: null,
      headers: { authorization: 'Bearer not-a-token-of-ours' },
    });
    expect(status).toBe(401);
  });

  it('refuses a page of an origin not in CORS_ORIGINS with 403, and opens for one in it', async () => {
    expect(await refusal(server.url, { headers: { origin: 'https://evil.example' } })).toBe(403);
    expect(await refusal(server.url, { headers: { origin: 'https://deployer.example' } })).toBe(
      101,
    );
  });

  it('answers a plain GET of /v1/ws with 426 problem+json', async () => {
    const res = await server.request('GET', '/v1/ws', { token: 'viewer' });
    expect(res.status).toBe(426);
    expect(res.body.type).toMatch(/upgrade-required$/);
  });

  it('sends a full snapshot of a topic, then a diff when a route is added', async () => {
    const s = await openSocket(server.url, { token: 'viewer' });
    s.send({ type: 'subscribe', topics: ['routes'] });
    const full = await s.next((m) => m.type === 'full' && m.topic === 'routes');
    expect(typeof full.seq).toBe('number');
    const id = await addRoute('ws1', '203.0.113.10/32');
    const diff = await s.next((m) => m.type === 'diff' && m.topic === 'routes' && id in m.added);
    expect(diff.seq).toBeGreaterThan(full.seq);
    expect(diff.added[id]).toMatchObject({ id, host: 'ws1', to: '203.0.113.10/32' });
    await s.close();
  });

  it('answers a message it does not accept with an error and keeps the socket open', async () => {
    const s = await openSocket(server.url, { token: 'viewer' });
    s.send('not json');
    const e1 = await s.next((m) => m.type === 'error');
    expect(e1).toMatchObject({ topic: null, seq: null, code: 'bad_message' });
    s.send({ type: 'delete', topics: ['routes'] });
    await s.next((m) => m.type === 'error', 10_000, s.received.indexOf(e1) + 1);
    s.send({ type: 'ping', id: 7 });
    expect(await s.next((m) => m.type === 'pong')).toMatchObject({ id: 7, topic: null });
    await s.close();
  });

  it('refuses a topic that does not exist with an unknown_topic error', async () => {
    const s = await openSocket(server.url, { token: 'viewer' });
    s.send({ type: 'subscribe', topics: ['hosts/not-in-inventory', 'bogus'] });
    const errors = [
      await s.next((m) => m.type === 'error' && m.topic === 'hosts/not-in-inventory'),
      await s.next((m) => m.type === 'error' && m.topic === 'bogus'),
    ];
    expect(errors.map((e) => e.code)).toEqual(['unknown_topic', 'unknown_topic']);
    await s.close();
  });

  it('refuses a viewer the admin-only clients topic', async () => {
    const s = await openSocket(server.url, { token: 'viewer' });
    s.send({ type: 'subscribe', topics: ['clients'] });
    const e = await s.next((m) => m.type === 'error');
    expect(e).toMatchObject({ topic: 'clients', code: 'forbidden' });
    await s.close();
  });

  it('resumes after a reconnect: the missed diffs in order, none twice, then resumed', async () => {
    const a = await openSocket(server.url, { token: 'viewer' });
    a.send({ type: 'subscribe', topics: ['routes'] });
    const full = await a.next((m) => m.type === 'full');
    await a.close();
    const ids = [
      await addRoute('ws2', '203.0.113.20/32'),
      await addRoute('ws2', '203.0.113.21/32'),
    ];
    await server.services.live.desired.flush();
    const b = await openSocket(server.url, { token: 'viewer' });
    b.send({ type: 'subscribe', topics: ['routes'], since: { routes: full.seq } });
    const resumed = await b.next((m) => m.type === 'resumed');
    const replayed = b.received.filter((m) => m.type === 'diff');
    const seqs = replayed.map((m) => m.seq);
    expect(seqs[0]).toBe(full.seq + 1);
    expect(seqs).toEqual([...new Set(seqs)].sort((x, y) => x - y));
    expect(resumed.seq).toBe(seqs.at(-1));
    const added = Object.assign({}, ...replayed.map((m: Message) => m.added));
    for (const id of ids) expect(Object.keys(added)).toContain(id);
    expect(b.received.some((m) => m.type === 'full')).toBe(false);
    await b.close();
  });

  it('sends a new full to a client whose seq the log no longer holds', async () => {
    const s = await openSocket(server.url, { token: 'viewer' });
    // WS_REPLAY is 5: seq 1 of a topic with more messages than that is gone. Each add is
    // flushed on its own, so that they are never coalesced into fewer messages than that.
    for (let i = 0; i < 8; i++) {
      await addRoute('ws1', `203.0.113.${30 + i}/32`);
      await server.services.live.desired.flush();
    }
    s.send({ type: 'subscribe', topics: ['routes'], since: { routes: 1 } });
    const full = await s.next((m) => m.type === 'full' && m.topic === 'routes');
    expect(full.seq).toBeGreaterThan(6);
    await s.close();
  });

  it('opens with a ticket once, and refuses the same ticket again with 401', async () => {
    const t = await server.request('POST', '/v1/ws/tickets', { token: 'viewer' });
    expect(t.status, t.text).toBe(201);
    const query = `?ticket=${encodeURIComponent(t.body.ticket)}`;
    const s = await openSocket(server.url, { token: null, query });
    s.send({ type: 'subscribe', topics: ['clients'] });
    expect(await s.next((m) => m.type === 'error')).toMatchObject({ code: 'forbidden' });
    await s.close();
    expect(await refusal(server.url, { token: null, query })).toBe(401);
  });

  it('opens with the token offered as a subprotocol and selects only routeplane.v1', async () => {
    const s = await openSocket(server.url, {
      token: null,
      protocols: ['routeplane.v1', `routeplane.bearer.${TOKENS.viewer}`],
    });
    expect(s.ws.protocol).toBe('routeplane.v1');
    await s.close();
  });

  it('closes the sockets of a token removed from API_TOKENS_FILE', async () => {
    const s = await openSocket(server.url, {
      token: null,
      headers: { authorization: 'Bearer dashboard-token-0123456789' },
    });
    s.send({ type: 'ping' });
    await s.next((m) => m.type === 'pong');
    await writeFile(tokensFile, '');
    server.reloadTokens();
    expect(await s.closed).toBe(4401);
  });

  const cli = (args: string[], token: string = TOKENS.viewer) =>
    execa('node', [path.join(REPO, 'bin/routeplane.js'), ...args], {
      cwd: REPO,
      reject: false,
      env: { ROUTEPLANE_API: server.url, ROUTEPLANE_TOKEN: token },
    });

  it('streams a topic with routeplane watch: the full, then the diff of a new route', async () => {
    const watching = cli(['watch', 'routes', '--json']);
    const lines: Message[] = [];
    watching.stdout!.on('data', (chunk: Buffer) => {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
    });
    const seen = async (match: (m: Message) => boolean) => {
      for (let i = 0; i < 200 && !lines.some(match); i++)
        await new Promise((r) => setTimeout(r, 50));
      return lines.find(match);
    };
    expect(await seen((m) => m.type === 'full')).toMatchObject({ topic: 'routes' });
    const id = await addRoute('ws1', '203.0.113.40/32');
    expect(await seen((m) => m.type === 'diff' && id in m.added)).toMatchObject({
      topic: 'routes',
    });
    watching.kill('SIGINT');
    await watching;
  });

  it('exits 1 from routeplane watch on a topic the token may not read', async () => {
    const r = await cli(['watch', 'clients']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/clients: .*may not read/);
  });

  it('exits 1 from routeplane watch when the server refuses the token', async () => {
    const r = await cli(['watch', 'routes'], 'not-a-token-of-ours');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/refused the WebSocket \(401\)/);
  });

  it('answers a CORS preflight from an origin in CORS_ORIGINS, without credentials', async () => {
    const res = await fetch(`${server.url}/v1/routes`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://deployer.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://deployer.example');
    expect(res.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('lets a page of an origin in CORS_ORIGINS read answers, and no other origin', async () => {
    const asked = (origin: string) =>
      server.request('GET', '/v1/routes', { token: 'viewer', headers: { origin } });
    const ok = await asked('https://deployer.example');
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://deployer.example');
    const other = await asked('https://evil.example');
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('never logs a token or a ticket', () => {
    const text = server.logs.join('\n');
    for (const t of [...Object.values(TOKENS), 'dashboard-token-0123456789']) {
      expect(text).not.toContain(t);
    }
    expect(text).not.toMatch(/ticket=/);
  });

  it('sends only messages that docs/ws-messages.schema.json describes', async () => {
    const validate = await messageSchema('ServerMessage');
    expect(everyMessage.length).toBeGreaterThan(10);
    for (const m of everyMessage) expect(validate(m), JSON.stringify(validate.errors)).toBe(true);
    expect(new Set(everyMessage.map((m) => m.type))).toEqual(
      new Set(['full', 'diff', 'resumed', 'error', 'pong']),
    );
  });

  it('describes in the schema file the client messages it accepts, and not the others', async () => {
    const validate = await messageSchema('ClientMessage');
    expect(validate({ type: 'subscribe', topics: ['routes'], since: { routes: 3 } })).toBe(true);
    expect(validate({ type: 'unsubscribe', topics: ['hosts/*'] })).toBe(true);
    expect(validate({ type: 'ping', id: 1 })).toBe(true);
    expect(validate({ type: 'delete', topics: ['routes'] })).toBe(false);
    expect(validate({ type: 'subscribe', topics: [] })).toBe(false);
  });
});
