import { InvalidArgumentError, type Command } from 'commander';
import WebSocket from 'ws';
import { addApiOptions, intOption } from './api-command.ts';
import { DEFAULT_API_URL } from './api-client.ts';

interface WatchOptions {
  api: string;
  token?: string;
  json?: boolean;
  since: Record<string, number>;
  count?: number;
}

type Message = Record<string, unknown> & { type: string; topic: string | null; seq: number | null };

const RECONNECT_MAX_MS = 10_000;

function sinceOption(value: string, previous: Record<string, number>) {
  const m = /^(.+)=(\d+)$/.exec(value);
  if (!m) throw new InvalidArgumentError('must be TOPIC=SEQ, e.g. routes=41');
  return { ...previous, [m[1]!]: Number(m[2]) };
}

/** One line per message for a person: what changed, by key. */
function describe(m: Message): string[] {
  const at = `${m.topic} #${m.seq}`;
  if (m.type === 'full') return [`${at} full: ${Object.keys(m.objects as object).length} objects`];
  if (m.type === 'diff') {
    const added = Object.keys(m.added as object).map((k) => `${at} + ${k}`);
    const changed = Object.keys(m.changed as object).map((k) => `${at} ~ ${k}`);
    const removed = (m.removed as string[]).map((k) => `${at} - ${k}`);
    return [...added, ...changed, ...removed];
  }
  if (m.type === 'event') {
    const e = m.event as Record<string, unknown>;
    return [`${at} ${[e.kind, e.host, e.task, e.status].filter(Boolean).join(' ')}`];
  }
  if (m.type === 'resumed') return [`${at} resumed`];
  return [];
}

/**
 * `routeplane watch TOPIC...`: the WebSocket stream as lines (or JSON lines), reconnecting
 * with backoff and resuming from the last seq of each topic, until interrupted or --count.
 */
export function registerWatchCommand(program: Command): void {
  addApiOptions(
    program
      .command('watch')
      .description(
        'stream live state: hosts/<host>, hosts/*, routes, firewall, runs, runs/<id> (Ctrl-C ends)',
      )
      .argument('<topics...>', 'topics to subscribe to')
      .option('--since <topic=seq>', 'resume a topic after this seq (repeatable)', sinceOption, {})
      .option('--count <n>', 'exit after this many messages', intOption(1, 1_000_000)),
  ).action(async (topics: string[], opts: WatchOptions) => {
    const code = await watch(topics, opts);
    process.exit(code);
  });
}

async function watch(topics: string[], opts: WatchOptions): Promise<number> {
  const since = { ...opts.since };
  let left = opts.count ?? Infinity;
  let attempt = 0;
  const base = (opts.api || DEFAULT_API_URL).replace(/\/+$/, '').replace(/^http/, 'ws');
  for (;;) {
    const outcome = await new Promise<'done' | 'refused' | 'lost' | 'bad'>((resolve) => {
      const ws = new WebSocket(`${base}/v1/ws`, ['routeplane.v1'], {
        headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
      });
      ws.on('unexpected-response', (_req, res) => {
        process.stderr.write(`routeplane: the server refused the WebSocket (${res.statusCode})\n`);
        resolve('refused');
      });
      ws.on('open', () => {
        attempt = 0;
        ws.send(JSON.stringify({ type: 'subscribe', topics, since }));
      });
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as Message;
        if (m.type === 'error') {
          process.stderr.write(`routeplane: ${m.topic ?? 'message'}: ${String(m.detail)}\n`);
          if (m.code === 'forbidden' || m.code === 'unknown_topic') {
            ws.close();
            resolve('bad');
          }
          return;
        }
        if (m.topic && typeof m.seq === 'number') since[m.topic] = m.seq;
        const lines = opts.json ? [JSON.stringify(m)] : describe(m);
        for (const l of lines) process.stdout.write(`${l}\n`);
        if (--left <= 0) {
          ws.close();
          resolve('done');
        }
      });
      ws.on('error', () => undefined);
      ws.on('close', () => resolve('lost'));
    });
    if (outcome === 'done') return 0;
    if (outcome === 'refused' || outcome === 'bad') return 1;
    const delay = Math.min(RECONNECT_MAX_MS, 500 * 2 ** attempt++);
    process.stderr.write(`routeplane: connection lost; reconnecting in ${delay} ms\n`);
    await new Promise((r) => setTimeout(r, delay));
  }
}
