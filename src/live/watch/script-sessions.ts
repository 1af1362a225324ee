import type { Logger } from '../../logger.ts';
import type { WatchStatus } from './host-watcher.ts';
import type { WatchConnection } from './watch-connection.ts';

/** What a set of sessions needs of each one (a HostWatcher, a ProbeSession). */
export interface Session {
  start(): void;
  stop(): Promise<void>;
  readonly status: WatchStatus;
}

/** How one kind of session is made, and what its log lines say. */
export interface SessionKind<T, S extends Session> {
  /** The name a session is kept by: a host, a checking point. */
  nameOf(item: T): string;
  connectionOf(item: T): WatchConnection;
  /** The script every session of the kind runs, read once (again after a failed read). */
  loadScript(): Promise<string>;
  create(item: T, connection: WatchConnection, script: () => Promise<string>): S;
  /** What a kept session is told when its item is set again (a prober's new checks). */
  update?(session: S, item: T): void;
  logger: Logger;
  /** `watch.restart`, `probe.point_gone`, ... */
  events: { restart: string; gone: string };
  goneMessage: string;
}

interface Entry<S> {
  session: S;
  /** The resolved connection as text: a change of any setting means a new session. */
  key: string;
}

/**
 * One long-lived script session per named item (watchers per host, probers per checking
 * point): started, stopped and restarted as the set changes; set() calls are applied one after
 * the other, in order, and a session's old process ends before its new one starts.
 */
export class ScriptSessions<T, S extends Session> {
  private readonly entries = new Map<string, Entry<S>>();
  private queue: Promise<void> = Promise.resolve();
  private script: Promise<string> | null = null;
  private stopped = false;

  constructor(private readonly kind: SessionKind<T, S>) {}

  /**
   * Runs exactly `items` (a name given twice: the last counts): starts the new, stops the gone,
   * restarts those whose connection settings changed, updates the others. Resolves once the
   * stopped sessions' processes have ended.
   */
  set(items: T[]): Promise<void> {
    return this.enqueue(() => this.apply(items));
  }

  /** Stops every session and waits for their processes; set() is a no-op afterwards. */
  stop(): Promise<void> {
    return this.enqueue(async () => {
      this.stopped = true;
      const all = [...this.entries.values()];
      this.entries.clear();
      await Promise.all(all.map((e) => e.session.stop()));
    });
  }

  /** The named session's status; undefined for a name not in the last set(). */
  status(name: string): WatchStatus | undefined {
    return this.entries.get(name)?.session.status;
  }

  /** The names with a session (or known as not watched), sorted. */
  names(): string[] {
    return [...this.entries.keys()].sort();
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.queue.then(step);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private loadScript(): Promise<string> {
    this.script ??= this.kind.loadScript();
    // A failed read is tried again on the next connection attempt.
    this.script.catch(() => {
      this.script = null;
    });
    return this.script;
  }

  private async apply(items: T[]): Promise<void> {
    if (this.stopped) return;
    const { kind } = this;
    const wanted = new Map(items.map((i) => [kind.nameOf(i), i]));
    const stopping: Promise<void>[] = [];
    for (const [name, entry] of this.entries) {
      const item = wanted.get(name);
      if (item && JSON.stringify(kind.connectionOf(item)) === entry.key) continue;
      this.entries.delete(name);
      kind.logger.info(
        { event: item ? kind.events.restart : kind.events.gone, host: name },
        item ? 'connection settings changed; session restarted' : kind.goneMessage,
      );
      stopping.push(entry.session.stop());
    }
    // The old process ends before the new one starts: never two sessions of one name.
    await Promise.all(stopping);
    for (const [name, item] of wanted) {
      const existing = this.entries.get(name);
      if (existing) {
        kind.update?.(existing.session, item);
        continue;
      }
      const connection = kind.connectionOf(item);
      const session = kind.create(item, connection, () => this.loadScript());
      kind.update?.(session, item);
      this.entries.set(name, { session, key: JSON.stringify(connection) });
      session.start();
    }
  }
}
