import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { createLogger } from '../../../src/logger.ts';
import type { MessageBody, TopicLog, TopicMessage } from '../../../src/live/topic-log.ts';
import { Hub, type TopicSources } from '../../../src/ws/hub.ts';
import type { TopicPattern } from '../../../src/ws/protocol.ts';

/** The topic log in memory: one topic's messages and objects, as TopicLog keeps them. */
class MemoryLog {
  messages: TopicMessage[] = [];
  objects: Record<string, unknown> = {};
  keep = 1000;
  add(topic: string, body: MessageBody) {
    const seq = (this.messages.at(-1)?.seq ?? 0) + 1;
    if (body.type === 'diff') Object.assign(this.objects, body.added, body.changed);
    this.messages.push({ topic, seq, body });
    this.messages = this.messages.slice(-this.keep);
    return { topic, seq };
  }
  async full(_topic: string) {
    return { seq: this.messages.at(-1)?.seq ?? 0, objects: { ...this.objects } };
  }
  async since(_topic: string, seq: number) {
    const head = this.messages.at(-1)?.seq ?? 0;
    if (seq === head) return { seq, messages: [] };
    const after = this.messages.filter((m) => m.seq > seq);
    if (after[0]?.seq !== seq + 1) return null;
    return { seq: head, messages: after };
  }
}

/** A socket the hub writes to: records what it is sent; its buffer is whatever the test says. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  sent: Record<string, unknown>[] = [];
  terminated = false;
  send(text: string) {
    this.sent.push(JSON.parse(text) as Record<string, unknown>);
  }
  ping() {}
  terminate() {
    this.terminated = true;
    this.readyState = 3;
  }
  close() {
    this.readyState = 3;
  }
  say(msg: unknown) {
    this.emit('message', Buffer.from(JSON.stringify(msg)), false);
  }
}

const patterns: TopicPattern[] = [{ pattern: 'routes', role: 'viewer' }];
const sources: TopicSources = {
  missing: async () => null,
  seed: async () => undefined,
  members: async () => [],
};
const tick = () => new Promise((r) => setTimeout(r, 5));

function setup(maxBufferedBytes = 1_000_000) {
  const log = new MemoryLog();
  const hub = new Hub({
    log: log as unknown as TopicLog,
    sources,
    patterns,
    logger: createLogger('silent'),
    maxBufferedBytes,
    heartbeatMs: 60_000,
  });
  const connect = () => {
    const ws = new FakeSocket();
    hub.attach(ws as unknown as WebSocket, {
      id: `c${Math.random()}`,
      actor: { name: 't', role: 'viewer' },
      tokenDigest: null,
    });
    return ws;
  };
  const diff = (key: string) => ({
    type: 'diff' as const,
    added: { [key]: { key } },
    changed: {},
    removed: [],
  });
  return { log, hub, connect, diff };
}

describe('the hub', () => {
  it('sends a full, then each committed message once, in seq order', async () => {
    const { log, hub, connect, diff } = setup();
    log.add('routes', diff('a'));
    const ws = connect();
    ws.say({ type: 'subscribe', topics: ['routes'] });
    await tick();
    expect(ws.sent[0]).toMatchObject({ type: 'full', seq: 1, objects: { a: { key: 'a' } } });
    const p2 = log.add('routes', diff('b'));
    const p3 = log.add('routes', diff('c'));
    hub.published(p3); // a notification may arrive for the later one first
    hub.published(p2);
    await tick();
    expect(ws.sent.map((m) => m.seq)).toEqual([1, 2, 3]);
    hub.close();
  });

  it('reads a message once for all its subscribers', async () => {
    const { log, hub, connect, diff } = setup();
    let reads = 0;
    const since = log.since.bind(log);
    log.since = async (t, s) => (reads++, since(t, s));
    const sockets = Array.from({ length: 50 }, connect);
    for (const ws of sockets) ws.say({ type: 'subscribe', topics: ['routes'] });
    await tick();
    reads = 0;
    hub.published(log.add('routes', diff('x')));
    await tick();
    expect(reads).toBe(1);
    for (const ws of sockets) expect(ws.sent.at(-1)).toMatchObject({ type: 'diff', seq: 1 });
    hub.close();
  });

  it('sends a new full to subscribers when the log no longer holds what they missed', async () => {
    const { log, hub, connect, diff } = setup();
    const ws = connect();
    ws.say({ type: 'subscribe', topics: ['routes'] });
    await tick();
    log.keep = 2;
    for (const k of ['a', 'b', 'c', 'd']) log.add('routes', diff(k)); // missed notifications
    hub.catchUp();
    await tick();
    expect(ws.sent.at(-1)).toMatchObject({ type: 'full', seq: 4 });
    hub.close();
  });

  it('disconnects a client whose unsent data passes the bound, and keeps serving the others', async () => {
    const { log, hub, connect, diff } = setup(10_000);
    const slow = connect();
    const fast = connect();
    for (const ws of [slow, fast]) ws.say({ type: 'subscribe', topics: ['routes'] });
    await tick();
    slow.bufferedAmount = 9_990;
    hub.published(log.add('routes', diff('y')));
    await tick();
    expect(slow.terminated).toBe(true);
    expect(fast.sent.at(-1)).toMatchObject({ type: 'diff', seq: 1 });
    expect(hub.size).toBe(1);
    hub.close();
  });
});

describe('the hub’s heartbeat', () => {
  it('pings every client, and disconnects one that did not answer the last ping', async () => {
    const log = new MemoryLog();
    const hub = new Hub({
      log: log as unknown as TopicLog,
      sources,
      patterns,
      logger: createLogger('silent'),
      maxBufferedBytes: 1_000_000,
      heartbeatMs: 20,
    });
    const live = new FakeSocket();
    const dead = new FakeSocket();
    let pings = 0;
    live.ping = () => {
      pings++;
      live.emit('pong');
    };
    for (const [i, ws] of [live, dead].entries()) {
      hub.attach(ws as unknown as WebSocket, {
        id: `c${i}`,
        actor: { name: 't', role: 'viewer' },
        tokenDigest: null,
      });
    }
    await new Promise((r) => setTimeout(r, 90));
    expect(dead.terminated).toBe(true);
    expect(live.terminated).toBe(false);
    expect(pings).toBeGreaterThanOrEqual(2);
    expect(hub.size).toBe(1);
    hub.close();
  });
});
