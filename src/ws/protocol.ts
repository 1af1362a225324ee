import { z } from 'zod';
import { roleSatisfies, type Role } from '../auth/roles.ts';

/** The WebSocket subprotocol routeplane speaks; the server always selects it. */
export const SUBPROTOCOL = 'routeplane.v1';
/** A browser, which cannot set headers, may offer its token as `routeplane.bearer.<token>`. */
export const BEARER_SUBPROTOCOL_PREFIX = 'routeplane.bearer.';

const topicName = z.string().min(1).max(300);

/** What a client may send; anything else is answered with an `error` message. */
export const clientMessage = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('subscribe'),
      topics: z.array(topicName).min(1).max(64),
      /** The last seq the client saw per topic: it resumes after it when the log still can. */
      since: z.record(topicName, z.number().int().min(0)).optional(),
    })
    .strict(),
  z.object({ type: z.literal('unsubscribe'), topics: z.array(topicName).min(1).max(64) }).strict(),
  z
    .object({ type: z.literal('ping'), id: z.union([z.string().max(100), z.number()]).optional() })
    .strict(),
]);
export type ClientMessage = z.infer<typeof clientMessage>;

/** One topic pattern of the contract's `x-topics` (the `/v1/ws` operation). */
export interface TopicPattern {
  pattern: string;
  role: Role;
}

export type TopicMatch =
  | { kind: 'topic'; topic: string; pattern: string; param: string | null }
  /** `hosts/*`: every topic under the prefix, including those that appear later. */
  | { kind: 'wildcard'; prefix: string; pattern: string };

/**
 * Which pattern a topic name matches: literal segments, one `{param}` segment of a plain name
 * (letters, digits, `_.:-`), or a trailing `*`. Null for anything else.
 */
export function matchTopic(topic: string, patterns: TopicPattern[]): TopicMatch | null {
  for (const p of patterns) {
    const ps = p.pattern.split('/');
    const ts = topic.split('/');
    if (ps.length !== ts.length) continue;
    let param: string | null = null;
    let ok = true;
    for (let i = 0; i < ps.length && ok; i++) {
      const seg = ps[i]!;
      const got = ts[i]!;
      if (seg === '*') ok = i === ps.length - 1 && got === '*';
      else if (/^\{\w+\}$/.test(seg)) {
        ok = /^[A-Za-z0-9_.:-]{1,253}$/.test(got);
        param = got;
      } else ok = seg === got;
    }
    if (!ok) continue;
    if (ps.at(-1) === '*') {
      return { kind: 'wildcard', prefix: topic.slice(0, -1), pattern: p.pattern };
    }
    return { kind: 'topic', topic, pattern: p.pattern, param };
  }
  return null;
}

export function mayRead(role: Role, topic: TopicMatch, patterns: TopicPattern[]): boolean {
  const p = patterns.find((x) => x.pattern === topic.pattern);
  return !!p && roleSatisfies(role, p.role);
}

/** The patterns the contract declares, read from the `/v1/ws` operation's `x-topics`. */
export function topicPatternsOf(document: Record<string, unknown>): TopicPattern[] {
  const op = (document.paths as Record<string, Record<string, Record<string, unknown>>>)?.['/v1/ws']
    ?.get;
  const list = op?.['x-topics'];
  if (!Array.isArray(list)) throw new Error('openapi.yaml: /v1/ws declares no x-topics');
  return list.map((t: { pattern?: unknown; role?: unknown }) => {
    if (typeof t.pattern !== 'string' || !['viewer', 'operator', 'admin'].includes(String(t.role)))
      throw new Error(`openapi.yaml: /v1/ws x-topics entry ${JSON.stringify(t)} is malformed`);
    return { pattern: t.pattern, role: t.role as Role };
  });
}
