import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import type { Actor } from '../auth/roles.ts';
import type { Logger } from '../logger.ts';
import type { Objects, Published, TopicLog, TopicMessage } from '../live/topic-log.ts';
import {
  clientMessage,
  matchTopic,
  mayRead,
  type ClientMessage,
  type TopicMatch,
  type TopicPattern,
} from './protocol.ts';

/** What the hub asks of the features whose state it streams. */
export interface TopicSources {
  /** Why a topic has no subject (a host not in the inventory, no such run); null if it has. */
  missing(match: Extract<TopicMatch, { kind: 'topic' }>): Promise<string | null>;
  /** Makes sure the topic's objects are there before its first `full` (a run's, a host's). */
  seed(match: Extract<TopicMatch, { kind: 'topic' }>): Promise<void>;
  /** The topics a wildcard stands for now (`hosts/` → every host's topic). */
  members(prefix: string): Promise<string[]>;
}

export interface HubOptions {
  log: TopicLog;
  sources: TopicSources;
  patterns: TopicPattern[];
  logger: Logger;
  /** A client whose unsent data passes this is disconnected, never buffered without bound. */
  maxBufferedBytes: number;
  heartbeatMs: number;
}

export interface ClientInfo {
  id: string;
  actor: Actor;
  /** SHA-256 of the bearer token the socket was opened with (null behind Kong). */
  tokenDigest: Buffer | null;
}

interface Subscription {
  /** The last seq this client was sent on the topic. */
  seq: number;
  /** Messages that arrived while its `full` or replay was being read. */
  pending: TopicMessage[] | null;
}

/** One connected client as the admin-only `clients` topic shows it. */
export interface ClientSummary {
  id: string;
  actor: string;
  role: string;
  topics: string[];
  connected_at: string;
}

interface Client extends ClientInfo {
  ws: WebSocket;
  connectedAt: Date;
  subs: Map<string, Subscription>;
  /** Wildcard prefixes this client follows (`hosts/`). */
  wildcards: Set<string>;
  alive: boolean;
}

interface TopicState {
  clients: Set<Client>;
  /** The last seq delivered to this process's subscribers. */
  delivered: number;
  /** Deliveries of one topic, one after another, in seq order. */
  chain: Promise<void>;
}

type Outgoing = Record<string, unknown> & { type: string };

/**
 * Subscribers of this process: each topic gets a `full` (or a replay from the client's last
 * seq), then each message once, in seq order, as the topic log commits them (told by the
 * LISTEN of every replica, or directly on PGlite). A message is read and serialised once per
 * topic, whatever the number of subscribers.
 */
export class Hub {
  private readonly clients = new Set<Client>();
  private readonly topics = new Map<string, TopicState>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly watchers: ((count: number) => void)[] = [];

  constructor(private readonly opts: HubOptions) {
    this.heartbeat = setInterval(() => this.beat(), opts.heartbeatMs);
    this.heartbeat.unref();
  }

  get size(): number {
    return this.clients.size;
  }

  /** Told when a client connects, leaves, subscribes or unsubscribes (the `clients` topic). */
  onClientsChanged(fn: (count: number) => void): void {
    this.watchers.push(fn);
  }

  describe(): ClientSummary[] {
    return [...this.clients].map((c) => ({
      id: c.id,
      actor: c.actor.name,
      role: c.actor.role,
      topics: [...c.subs.keys(), ...[...c.wildcards].map((p) => `${p}*`)].sort(),
      connected_at: c.connectedAt.toISOString(),
    }));
  }

  private clientsChanged(): void {
    for (const fn of this.watchers) fn(this.clients.size);
  }

  attach(ws: WebSocket, info: ClientInfo): void {
    const client: Client = {
      ...info,
      ws,
      connectedAt: new Date(),
      subs: new Map(),
      wildcards: new Set(),
      alive: true,
    };
    this.clients.add(client);
    this.opts.logger.info(
      { event: 'ws.connected', client: client.id, actor: client.actor.name },
      'WebSocket client connected',
    );
    ws.on('pong', () => (client.alive = true));
    ws.on('message', (data, isBinary) => {
      if (isBinary) return this.error(client, null, 'bad_message', 'messages are JSON text');
      void this.receive(client, data.toString());
    });
    ws.on('close', () => this.detach(client));
    ws.on('error', () => this.detach(client));
    this.clientsChanged();
  }

  /** A topic message committed (here or on another replica). */
  published(p: Published): void {
    const state = this.topics.get(p.topic);
    if (state) {
      if (p.seq > state.delivered) this.deliver(p.topic, state);
      return;
    }
    // A new member of a wildcard some clients follow (a host added to the inventory).
    for (const c of this.clients) {
      for (const prefix of c.wildcards) {
        if (p.topic.startsWith(prefix) && !c.subs.has(p.topic)) void this.subscribeOne(c, p.topic);
      }
    }
  }

  /** After missed notifications (a LISTEN connection re-opened): every topic catches up. */
  catchUp(): void {
    for (const [topic, state] of this.topics) this.deliver(topic, state);
  }

  /** The tokens changed: sockets whose credentials are no longer `valid` are closed. */
  recheck(valid: (client: ClientInfo) => boolean): void {
    for (const c of this.clients) {
      if (!valid(c)) {
        this.opts.logger.info(
          { event: 'ws.closed_revoked', client: c.id, actor: c.actor.name },
          'closed a WebSocket whose token was removed',
        );
        c.ws.close(4401, 'the token was removed');
      }
    }
  }

  close(): void {
    clearInterval(this.heartbeat);
    for (const c of this.clients) c.ws.close(1001, 'server shutting down');
  }

  private async receive(client: Client, text: string): Promise<void> {
    let msg: ClientMessage;
    try {
      const parsed = clientMessage.safeParse(JSON.parse(text));
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        const where = issue.path.length ? `/${issue.path.join('/')}` : '';
        return this.error(client, null, 'bad_message', `${where || 'message'}: ${issue.message}`);
      }
      msg = parsed.data;
    } catch {
      return this.error(client, null, 'bad_message', 'not JSON');
    }
    try {
      if (msg.type === 'ping') {
        this.send(client, { type: 'pong', topic: null, seq: null, id: msg.id ?? null });
      } else if (msg.type === 'unsubscribe') {
        for (const t of msg.topics) this.unsubscribe(client, t);
        this.clientsChanged();
      } else {
        for (const t of msg.topics) await this.subscribe(client, t, msg.since ?? {});
        this.clientsChanged();
      }
    } catch (err) {
      this.opts.logger.warn({ event: 'ws.handle_failed', client: client.id, err }, 'ws failure');
      this.error(client, null, 'internal', 'the server could not handle this message');
    }
  }

  private async subscribe(client: Client, topic: string, since: Record<string, number>) {
    const match = matchTopic(topic, this.opts.patterns);
    if (!match) return this.error(client, topic, 'unknown_topic', 'no such topic');
    if (!mayRead(client.actor.role, match, this.opts.patterns)) {
      return this.error(
        client,
        topic,
        'forbidden',
        `${client.actor.name} (${client.actor.role}) may not read this topic`,
      );
    }
    if (match.kind === 'wildcard') {
      client.wildcards.add(match.prefix);
      for (const member of await this.opts.sources.members(match.prefix)) {
        if (!client.subs.has(member)) await this.subscribeOne(client, member, since[member]);
      }
      return;
    }
    const missing = await this.opts.sources.missing(match);
    if (missing) return this.error(client, topic, 'unknown_topic', missing);
    await this.opts.sources.seed(match);
    await this.subscribeOne(client, topic, since[topic]);
  }

  private async subscribeOne(client: Client, topic: string, since?: number): Promise<void> {
    if (client.subs.has(topic)) client.subs.delete(topic); // again: a fresh start
    const sub: Subscription = { seq: 0, pending: [] };
    client.subs.set(topic, sub);
    let state = this.topics.get(topic);
    if (!state) {
      state = { clients: new Set(), delivered: -1, chain: Promise.resolve() };
      this.topics.set(topic, state);
    }
    state.clients.add(client);
    const replay = since === undefined ? null : await this.opts.log.since(topic, since);
    if (client.subs.get(topic) !== sub) return; // unsubscribed meanwhile
    if (replay) {
      for (const m of replay.messages) this.send(client, this.outgoing(m));
      sub.seq = replay.seq;
      this.send(client, { type: 'resumed', topic, seq: replay.seq });
    } else {
      const full = await this.opts.log.full(topic);
      if (client.subs.get(topic) !== sub) return;
      sub.seq = full.seq;
      this.send(client, { type: 'full', topic, seq: full.seq, objects: full.objects });
    }
    if (state.delivered < 0) state.delivered = sub.seq;
    const pending = sub.pending ?? [];
    sub.pending = null;
    for (const m of pending) this.sendTo(client, sub, m);
    // Anything committed between the read and now that no notification has brought yet.
    this.deliver(topic, state);
  }

  private unsubscribe(client: Client, topic: string): void {
    if (topic.endsWith('*')) {
      const prefix = topic.slice(0, -1);
      client.wildcards.delete(prefix);
      for (const t of [...client.subs.keys()]) if (t.startsWith(prefix)) this.leave(client, t);
    } else this.leave(client, topic);
    this.send(client, { type: 'unsubscribed', topic, seq: null });
  }

  private leave(client: Client, topic: string): void {
    client.subs.delete(topic);
    const state = this.topics.get(topic);
    if (!state) return;
    state.clients.delete(client);
    if (state.clients.size === 0) this.topics.delete(topic);
  }

  private detach(client: Client): void {
    if (!this.clients.delete(client)) return;
    for (const t of [...client.subs.keys()]) this.leave(client, t);
    this.opts.logger.info({ event: 'ws.disconnected', client: client.id }, 'client left');
    this.clientsChanged();
  }

  /** Reads what the topic committed after `delivered` once, and sends it to each subscriber. */
  private deliver(topic: string, state: TopicState): void {
    state.chain = state.chain.then(async () => {
      if (this.topics.get(topic) !== state || state.delivered < 0) return;
      try {
        const next = await this.opts.log.since(topic, state.delivered);
        if (next) {
          for (const m of next.messages) {
            const text = JSON.stringify(this.outgoing(m));
            for (const c of state.clients) {
              const sub = c.subs.get(topic);
              if (sub) this.sendTo(c, sub, m, text);
            }
          }
          state.delivered = next.seq;
          return;
        }
        // Too far behind for the log (or a reset): everyone here starts again from a full.
        const full = await this.opts.log.full(topic);
        const text = JSON.stringify({ type: 'full', topic, seq: full.seq, objects: full.objects });
        for (const c of state.clients) {
          const sub = c.subs.get(topic);
          if (!sub || sub.pending) continue;
          if (sub.seq < full.seq) {
            sub.seq = full.seq;
            this.sendText(c, text);
          }
        }
        state.delivered = full.seq;
      } catch (err) {
        this.opts.logger.warn({ event: 'ws.deliver_failed', topic, err }, 'could not deliver');
      }
    });
  }

  private sendTo(c: Client, sub: Subscription, m: TopicMessage, text?: string): void {
    if (sub.pending) {
      sub.pending.push(m);
      return;
    }
    if (m.seq <= sub.seq) return; // already in its full or replay
    sub.seq = m.seq;
    this.sendText(c, text ?? JSON.stringify(this.outgoing(m)));
  }

  private outgoing(m: TopicMessage): Outgoing {
    if (m.body.type === 'diff') {
      const { added, changed, removed } = m.body;
      return { type: 'diff', topic: m.topic, seq: m.seq, added, changed, removed };
    }
    if (m.body.type === 'event') {
      return { type: 'event', topic: m.topic, seq: m.seq, event: m.body.event };
    }
    // Resets never reach here: since() answers null for them and deliver() sends a full.
    return { type: 'full', topic: m.topic, seq: m.seq, objects: {} as Objects };
  }

  private error(client: Client, topic: string | null, code: string, detail: string): void {
    this.send(client, { type: 'error', topic, seq: null, code, detail });
  }

  private send(client: Client, msg: Outgoing): void {
    this.sendText(client, JSON.stringify(msg));
  }

  private sendText(client: Client, text: string): void {
    const ws = client.ws;
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount + text.length > this.opts.maxBufferedBytes) {
      // A client that does not read would make this process hold everything for it.
      this.opts.logger.warn(
        { event: 'ws.slow_client', client: client.id, buffered: ws.bufferedAmount },
        'disconnected a WebSocket client that does not keep up',
      );
      ws.terminate();
      this.detach(client);
      return;
    }
    ws.send(text);
  }

  private beat(): void {
    for (const c of this.clients) {
      if (!c.alive) {
        c.ws.terminate();
        this.detach(c);
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }
}

export function newClientId(): string {
  return randomUUID();
}
