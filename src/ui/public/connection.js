/* global window */
// The WebSocket to the API: a fresh ticket for every connection (the token itself never goes
// into a URL), reconnects with backoff, and a ping now and then to notice a dead link.

export const SUBPROTOCOL = 'routeplane.v1';

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;
const HEARTBEAT_MS = 25_000;

/** The problem+json `detail` of a failed response, or its status line. */
async function problemDetail(res) {
  try {
    const body = await res.json();
    if (body && typeof body.detail === 'string') return body.detail;
    if (body && typeof body.title === 'string') return body.title;
  } catch {
    // not JSON
  }
  return `${res.status} ${res.statusText}`.trim();
}

export class Connection {
  /**
   * @param {object} o
   * @param {URL} o.apiBase the API's root, e.g. https://host/
   * @param {string} o.token
   * @param {(send: (msg: object) => void) => void} o.onOpen
   * @param {(msg: object) => void} o.onMessage
   * @param {(status: {state: string, detail?: string, retryAt?: number}) => void} o.onStatus
   * @param {(detail: string) => void} o.onUnauthorized the token was refused: nothing retries
   */
  constructor(o) {
    this.o = o;
    this.ws = null;
    this.stopped = false;
    this.attempts = 0;
    this.retryTimer = null;
    this.heartbeat = null;
    this.pingId = 0;
    this.awaitingPong = null;
    this.onOnline = () => {
      if (this.retryTimer !== null) {
        clearTimeout(this.retryTimer);
        this.retryTimer = null;
        this.connect();
      }
    };
  }

  start() {
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.stopHeartbeat();
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, 'bye');
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  async connect() {
    if (this.stopped) return;
    this.o.onStatus({ state: 'connecting' });
    let res;
    try {
      res = await fetch(new URL('v1/ws/tickets', this.o.apiBase), {
        method: 'POST',
        headers: { authorization: `Bearer ${this.o.token}`, accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (err) {
      return this.retry(`cannot reach the API (${err instanceof Error ? err.message : err})`);
    }
    if (this.stopped) return;
    if (res.status === 401 || res.status === 403) {
      this.stopped = true;
      this.o.onUnauthorized(await problemDetail(res));
      return;
    }
    if (!res.ok) return this.retry(`ticket request failed: ${await problemDetail(res)}`);
    let ticket;
    try {
      ticket = (await res.json()).ticket;
    } catch {
      ticket = undefined;
    }
    if (typeof ticket !== 'string' || ticket === '') {
      return this.retry('ticket request answered without a ticket');
    }
    if (this.stopped) return;

    const url = new URL('v1/ws', this.o.apiBase);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = `?ticket=${encodeURIComponent(ticket)}`;
    let ws;
    try {
      ws = new WebSocket(url.href, [SUBPROTOCOL]);
    } catch (err) {
      return this.retry(`cannot open the WebSocket (${err instanceof Error ? err.message : err})`);
    }
    this.ws = ws;
    let heard = false;
    ws.addEventListener('open', () => {
      if (this.ws !== ws) return;
      this.o.onStatus({ state: 'open' });
      this.startHeartbeat();
      this.o.onOpen((msg) => this.send(msg));
    });
    ws.addEventListener('message', (ev) => {
      if (this.ws !== ws) return;
      if (!heard) {
        // Only a connection that worked resets the backoff: a server that accepts and then
        // drops every connection is not hammered.
        heard = true;
        this.attempts = 0;
      }
      let msg;
      try {
        msg = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      if (msg && msg.type === 'pong') this.awaitingPong = null;
      this.o.onMessage(msg);
    });
    ws.addEventListener('close', (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopHeartbeat();
      const why = ev.reason ? `${ev.code} ${ev.reason}` : `code ${ev.code}`;
      this.retry(`connection closed (${why})`);
    });
  }

  retry(detail) {
    if (this.stopped) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempts);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempts = Math.min(this.attempts + 1, 10);
    this.o.onStatus({ state: 'waiting', detail, retryAt: Date.now() + delay });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  startHeartbeat() {
    this.stopHeartbeat();
    this.heartbeat = setInterval(() => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      if (this.awaitingPong !== null) {
        // No answer to the last ping in a whole interval: the link is dead, and a closing
        // handshake over it could take minutes; reconnect without waiting for it.
        this.ws = null;
        this.stopHeartbeat();
        ws.close(4000, 'no pong');
        this.retry('no answer to a ping');
        return;
      }
      this.awaitingPong = ++this.pingId;
      this.send({ type: 'ping', id: this.awaitingPong });
    }, HEARTBEAT_MS);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.awaitingPong = null;
  }
}
