import WebSocket from 'ws';
import { TOKENS } from './server.ts';

// Tests assert on arbitrary message shapes; the schema test checks them against the schema.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Message = Record<string, any>;

/** Every message any socket of this test file received: checked against the schema file. */
export const everyMessage: Message[] = [];

export interface TestSocket {
  ws: WebSocket;
  /** Every message received so far, in order. */
  received: Message[];
  send(msg: unknown): void;
  /** The first message (from `from` on) that `match` accepts, waiting up to `ms`. */
  next(match: (m: Message) => boolean, ms?: number, from?: number): Promise<Message>;
  /** Resolves with the close code. */
  closed: Promise<number>;
  close(): Promise<void>;
}

export interface OpenOptions {
  token?: keyof typeof TOKENS | null;
  protocols?: string[];
  headers?: Record<string, string>;
  query?: string;
}

/** A WebSocket to the server's /v1/ws, open (or rejected with the HTTP status of the refusal). */
export function openSocket(baseUrl: string, o: OpenOptions = {}): Promise<TestSocket> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  const token = o.token === undefined ? 'admin' : o.token;
  if (token) headers.authorization = `Bearer ${TOKENS[token]}`;
  const url = baseUrl.replace(/^http/, 'ws') + '/v1/ws' + (o.query ?? '');
  const ws = new WebSocket(url, o.protocols ?? ['routeplane.v1'], { headers });
  const received: Message[] = [];
  const waiters: { match: (m: Message) => boolean; from: number; resolve: (m: Message) => void }[] =
    [];
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as Message;
    received.push(m);
    everyMessage.push(m);
    for (const w of [...waiters]) {
      if (w.match(m)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      const err = new Error(`upgrade refused: ${res.statusCode}`) as Error & { status?: number };
      err.status = res.statusCode;
      reject(err);
    });
    ws.once('error', reject);
    ws.once('open', () =>
      resolve({
        ws,
        received,
        closed,
        send: (msg) => ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg)),
        next: (match, ms = 10_000, from = 0) => {
          const found = received.slice(from).find(match);
          if (found) return Promise.resolve(found);
          return new Promise((res, rej) => {
            const timer = setTimeout(
              () =>
                rej(
                  new Error(
                    `no matching message within ${ms} ms; got ${JSON.stringify(received.slice(-5))}`,
                  ),
                ),
              ms,
            );
            waiters.push({
              match,
              from,
              resolve: (m) => {
                clearTimeout(timer);
                res(m);
              },
            });
          });
        },
        close: async () => {
          if (ws.readyState === ws.CLOSED) return;
          ws.close();
          await closed;
        },
      }),
    );
  });
}

/** The HTTP status an upgrade was refused with. */
export async function refusal(baseUrl: string, o: OpenOptions = {}): Promise<number> {
  try {
    const s = await openSocket(baseUrl, o);
    await s.close();
    return 101;
  } catch (err) {
    return (err as { status?: number }).status ?? 0;
  }
}

/** A validator of docs/ws-messages.schema.json's definition `name`. */
export async function messageSchema(name: 'ServerMessage' | 'ClientMessage') {
  const { readFile } = await import('node:fs/promises');
  const { default: Ajv } = await import('ajv');
  const schema = JSON.parse(
    await readFile(new URL('../../docs/ws-messages.schema.json', import.meta.url), 'utf8'),
  ) as Record<string, unknown>;
  const ajv = new Ajv({ allErrors: true, strict: false });
  ajv.addSchema(schema, 'ws');
  return ajv.getSchema(`ws#/definitions/${name}`)!;
}
