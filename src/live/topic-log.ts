import type { Knex } from 'knex';
import type { Backend } from '../db/database.ts';
import { stableJson } from './stable-json.ts';

/** The channel every replica LISTENs on; a notification carries `topic` and `seq` only. */
export const LIVE_CHANNEL = 'routeplane_live';

/** A diff of more objects than this is stored as a marker: its subscribers get a new `full`. */
export const LARGE_DIFF = 5_000;

export type Objects = Record<string, unknown>;

/** What a topic message says, as stored; the hub adds `topic` and `seq` when it sends it. */
export type MessageBody =
  | { type: 'diff'; added: Objects; changed: Objects; removed: string[] }
  | { type: 'event'; event: Record<string, unknown> }
  /** Too large a change to send as a diff: subscribers are sent the topic's `full` again. */
  | { type: 'reset' };

export interface TopicMessage {
  topic: string;
  seq: number;
  body: MessageBody;
}

export interface Published {
  topic: string;
  seq: number;
}

export interface Update {
  /** The objects to set, by key; with `scope`, every other object of that scope is removed. */
  objects: Objects;
  /** Replace this scope as a whole (a host's routes in `routes`; '' is the whole topic). */
  scope?: string;
  /** Keys to remove (when not replacing a scope). */
  remove?: string[];
}

const CHUNK = 500;

/**
 * The live topics, in the database every replica shares: each topic's objects now, its
 * sequence, and its last messages. A publish computes the diff against the stored objects
 * under the topic's row lock, so every replica's changes get one order and one seq each, and
 * nothing is sent when nothing changed. On Postgres the commit notifies every replica (ids
 * only: NOTIFY payloads are capped at 8,000 bytes); on PGlite there is one process, and the
 * caller is told directly.
 */
export class TopicLog {
  private readonly committed: ((p: Published) => void)[] = [];

  constructor(
    private readonly knex: Knex,
    private readonly backend: Backend,
    /** WS_REPLAY: messages kept per topic for clients that resume. */
    private readonly replay: number,
  ) {}

  /** Called after each message commits, in this process (the PGlite delivery path). */
  onCommitted(fn: (p: Published) => void): void {
    this.committed.push(fn);
  }

  /** Stores what changed of `update` as one diff; null when nothing did. */
  publish(topic: string, update: Update): Promise<Published | null> {
    return this.write(topic, { update });
  }

  /** Appends an event (run progress) to a topic; it changes no object. */
  async event(topic: string, event: Record<string, unknown>): Promise<Published> {
    return (await this.write(topic, { events: [event] }))!;
  }

  /**
   * One transaction on one topic: the diff of `update` (if anything changed), then each of
   * `events`, each its own message and seq. Replicas are notified once, of the last seq
   * (they read every message after the one they delivered). Null when nothing was written.
   */
  async write(
    topic: string,
    w: { update?: Update; events?: Record<string, unknown>[] },
  ): Promise<Published | null> {
    const published = await this.knex.transaction(async (trx) => {
      let seq = await this.lockTopic(trx, topic);
      const start = seq;
      const diff = w.update ? await this.applyUpdate(trx, topic, w.update) : null;
      if (diff) seq = await this.append(trx, topic, seq + 1, diff);
      for (const event of w.events ?? []) {
        seq = await this.append(trx, topic, seq + 1, { type: 'event', event });
      }
      if (seq === start) return null;
      await trx('live_topics').where({ topic }).update({ seq });
      await trx('live_messages')
        .where({ topic })
        .andWhere('seq', '<=', seq - this.replay)
        .delete();
      if (this.backend === 'postgres') {
        // Delivered to every listening replica when this transaction commits, never before.
        await trx.raw('select pg_notify(?, ?)', [LIVE_CHANNEL, JSON.stringify({ topic, seq })]);
      }
      return { topic, seq };
    });
    if (published && this.backend !== 'postgres') {
      // One process (PGlite): nobody else to tell, and no NOTIFY to hear.
      for (const fn of this.committed) fn(published);
    }
    return published;
  }

  /** Writes `update`'s changes to the topic's objects; the diff message, or null if none. */
  private async applyUpdate(
    trx: Knex.Transaction,
    topic: string,
    update: Update,
  ): Promise<MessageBody | null> {
    const keys = Object.keys(update.objects);
    const before = new Map<string, string>();
    const rows =
      update.scope !== undefined
        ? await trx('live_objects').where({ topic, scope: update.scope }).select('key', 'value')
        : await this.valuesOf(trx, topic, [...keys, ...(update.remove ?? [])]);
    for (const r of rows as { key: string; value: unknown }[]) {
      before.set(r.key, stableJson(r.value));
    }
    const added: Objects = {};
    const changed: Objects = {};
    for (const k of keys) {
      const was = before.get(k);
      if (was === undefined) added[k] = update.objects[k];
      else if (was !== stableJson(update.objects[k])) changed[k] = update.objects[k];
    }
    const removed =
      update.scope !== undefined
        ? [...before.keys()].filter((k) => !(k in update.objects))
        : (update.remove ?? []).filter((k) => before.has(k) && !(k in update.objects));
    const count = Object.keys(added).length + Object.keys(changed).length + removed.length;
    if (count === 0) return null;
    const writes = Object.entries({ ...added, ...changed });
    for (let i = 0; i < writes.length; i += CHUNK) {
      await trx('live_objects')
        .insert(
          writes.slice(i, i + CHUNK).map(([key, value]) => ({
            topic,
            key,
            scope: update.scope ?? '',
            value: JSON.stringify(value),
          })),
        )
        .onConflict(['topic', 'key'])
        .merge(['value', 'scope']);
    }
    for (let i = 0; i < removed.length; i += CHUNK) {
      await trx('live_objects')
        .where({ topic })
        .whereIn('key', removed.slice(i, i + CHUNK))
        .delete();
    }
    return count > LARGE_DIFF ? { type: 'reset' } : { type: 'diff', added, changed, removed };
  }

  /** The topic's objects now and the seq they are current at (a subscriber's `full`). */
  async full(topic: string): Promise<{ seq: number; objects: Objects }> {
    return this.knex.transaction(async (trx) => {
      // Shared with readers, exclusive with a publish: never a state between two messages.
      const row = (await trx('live_topics').where({ topic }).forShare().first('seq')) as
        { seq: number } | undefined;
      const objects: Objects = {};
      if (!row) return { seq: 0, objects };
      const rows = (await trx('live_objects')
        .where({ topic })
        .orderBy('key')
        .select('key', 'value')) as { key: string; value: unknown }[];
      for (const r of rows) objects[r.key] = r.value;
      return { seq: Number(row.seq), objects };
    });
  }

  /**
   * Every message after `seq`, in order, when the log still holds all of them (and none is a
   * reset); null when the client must start again from a `full`.
   */
  async since(
    topic: string,
    seq: number,
  ): Promise<{ seq: number; messages: TopicMessage[] } | null> {
    const head = (await this.knex('live_topics').where({ topic }).first('seq')) as
      { seq: number } | undefined;
    const current = Number(head?.seq ?? 0);
    if (seq > current) return null; // a seq this topic never had (another database, a reset)
    if (seq === current) return { seq: current, messages: [] };
    const rows = (await this.knex('live_messages')
      .where({ topic })
      .andWhere('seq', '>', seq)
      .orderBy('seq')
      .select('seq', 'body')) as { seq: number; body: MessageBody }[];
    const messages = rows.map((r) => ({ topic, seq: Number(r.seq), body: r.body }));
    if (messages[0]?.seq !== seq + 1) return null;
    if (messages.some((m) => m.body.type === 'reset')) return null;
    return { seq: messages.at(-1)!.seq, messages };
  }

  /** One object of a topic as it stands, or undefined. */
  async get(topic: string, key: string): Promise<unknown> {
    const row = (await this.knex('live_objects').where({ topic, key }).first('value')) as
      { value: unknown } | undefined;
    return row?.value;
  }

  /** The scopes a topic's objects are in (the hosts of `routes`). */
  async scopes(topic: string): Promise<string[]> {
    const rows = (await this.knex('live_objects').where({ topic }).distinct('scope')) as {
      scope: string;
    }[];
    return rows.map((r) => r.scope);
  }

  /** Whether the topic has ever been published to. */
  async exists(topic: string): Promise<boolean> {
    return (await this.knex('live_topics').where({ topic }).first('seq')) !== undefined;
  }

  /** The topics whose name starts with `prefix` (the members of a wildcard subscription). */
  async topicsUnder(prefix: string): Promise<string[]> {
    const rows = (await this.knex('live_topics')
      .where('topic', 'like', `${prefix.replace(/[\\%_]/g, '\\$&')}%`)
      .orderBy('topic')
      .select('topic')) as { topic: string }[];
    return rows.map((r) => r.topic);
  }

  /** Forgets topics for good (finished runs no one asked about for a while). */
  async forget(topics: string[]): Promise<void> {
    if (topics.length === 0) return;
    for (const t of ['live_objects', 'live_messages', 'live_topics']) {
      await this.knex(t).whereIn('topic', topics).delete();
    }
  }

  private async lockTopic(trx: Knex.Transaction, topic: string): Promise<number> {
    await trx.raw('insert into live_topics (topic) values (?) on conflict (topic) do nothing', [
      topic,
    ]);
    const row = (await trx('live_topics').where({ topic }).forUpdate().first('seq')) as {
      seq: number;
    };
    return Number(row.seq);
  }

  private async valuesOf(trx: Knex.Transaction, topic: string, keys: string[]) {
    const out: { key: string; value: unknown }[] = [];
    for (let i = 0; i < keys.length; i += CHUNK) {
      out.push(
        ...((await trx('live_objects')
          .where({ topic })
          .whereIn('key', keys.slice(i, i + CHUNK))
          .select('key', 'value')) as { key: string; value: unknown }[]),
      );
    }
    return out;
  }

  private async append(
    trx: Knex.Transaction,
    topic: string,
    seq: number,
    body: MessageBody,
  ): Promise<number> {
    await trx('live_messages').insert({ topic, seq, body: JSON.stringify(body) });
    return seq;
  }
}
