// The dashboard's copy of the server's topics: per topic, its objects and the last seq seen.
// Fed by the WebSocket messages, one at a time; knows nothing of the DOM or the network.

const MAX_EVENTS = 200;

export class LiveState {
  constructor() {
    /** topic -> { seq, objects: Map<key, object>, events: object[], current: boolean } */
    this.topics = new Map();
    /** topic (or '' for none) -> the last error the server sent about it */
    this.errors = new Map();
  }

  /** The last seq per topic, for a resuming subscribe's `since`. */
  since() {
    const out = {};
    for (const [topic, t] of this.topics) if (typeof t.seq === 'number') out[topic] = t.seq;
    return out;
  }

  /** After a disconnect: everything held is kept for display but is no longer current. */
  markStale() {
    for (const t of this.topics.values()) t.current = false;
  }

  objects(topic) {
    const t = this.topics.get(topic);
    return t ? Object.fromEntries(t.objects) : {};
  }

  isCurrent(topic) {
    return this.topics.get(topic)?.current === true;
  }

  drop(topic) {
    this.topics.delete(topic);
    this.errors.delete(topic);
  }

  topic(name) {
    let t = this.topics.get(name);
    if (!t) {
      t = { seq: null, objects: new Map(), events: [], current: false };
      this.topics.set(name, t);
    }
    return t;
  }

  /**
   * Applies one server message; returns the topic it changed (null for none). Messages are
   * trusted for shape only as far as checked here: anything else is ignored.
   */
  apply(msg) {
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return null;
    const name = typeof msg.topic === 'string' ? msg.topic : null;
    switch (msg.type) {
      case 'full': {
        if (!name) return null;
        const t = this.topic(name);
        t.objects = new Map(Object.entries(isObject(msg.objects) ? msg.objects : {}));
        t.seq = seqOf(msg, t.seq);
        t.current = true;
        this.errors.delete(name);
        return name;
      }
      case 'diff': {
        if (!name) return null;
        const t = this.topic(name);
        // A diff already applied (replayed around a resume) changes nothing.
        if (typeof msg.seq === 'number' && typeof t.seq === 'number' && msg.seq <= t.seq) {
          return null;
        }
        for (const [k, v] of Object.entries(isObject(msg.added) ? msg.added : {})) {
          t.objects.set(k, v);
        }
        for (const [k, v] of Object.entries(isObject(msg.changed) ? msg.changed : {})) {
          t.objects.set(k, v);
        }
        for (const k of Array.isArray(msg.removed) ? msg.removed : []) t.objects.delete(String(k));
        t.seq = seqOf(msg, t.seq);
        return name;
      }
      case 'resumed': {
        if (!name) return null;
        const t = this.topic(name);
        t.seq = seqOf(msg, t.seq);
        t.current = true;
        this.errors.delete(name);
        return name;
      }
      case 'event': {
        if (!name) return null;
        const t = this.topic(name);
        if (typeof msg.seq === 'number' && typeof t.seq === 'number' && msg.seq <= t.seq) {
          return null;
        }
        if (isObject(msg.event)) {
          t.events.push(msg.event);
          if (t.events.length > MAX_EVENTS) t.events.splice(0, t.events.length - MAX_EVENTS);
        }
        t.seq = seqOf(msg, t.seq);
        return name;
      }
      case 'unsubscribed':
        if (!name) return null;
        this.drop(name);
        return name;
      case 'error':
        this.errors.set(name ?? '', {
          code: String(msg.code ?? 'error'),
          detail: String(msg.detail ?? ''),
        });
        return name ?? '';
      default:
        return null;
    }
  }
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function seqOf(msg, previous) {
  return typeof msg.seq === 'number' ? msg.seq : previous;
}
