import pg from 'pg';
import type { Database } from '../db/database.ts';
import type { Logger } from '../logger.ts';
import { LIVE_CHANNEL, type Published, type TopicLog } from './topic-log.ts';

const RECONNECT_MAX_MS = 5_000;

/**
 * Tells this process of every topic message any replica commits: on Postgres one dedicated
 * connection LISTENs (re-opened with backoff when lost, after which every topic catches up,
 * since notifications sent meanwhile are gone); on PGlite the topic log says so itself.
 */
export class LiveBus {
  private client: pg.Client | null = null;
  private stopped = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: Pick<Database, 'backend' | 'url'>,
    private readonly log: TopicLog,
    private readonly logger: Logger,
    private readonly handlers: { published(p: Published): void; reconnected(): void },
  ) {}

  async start(): Promise<void> {
    if (this.db.backend !== 'postgres') {
      this.log.onCommitted((p) => this.handlers.published(p));
      return;
    }
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.client?.end().catch(() => undefined);
    this.client = null;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.db.url, keepAlive: true });
    client.on('notification', (n) => {
      if (n.channel !== LIVE_CHANNEL || !n.payload) return;
      try {
        const p = JSON.parse(n.payload) as Published;
        if (typeof p.topic === 'string' && Number.isInteger(p.seq)) this.handlers.published(p);
      } catch {
        // not ours
      }
    });
    client.on('error', (err) => {
      this.logger.warn({ event: 'live.listen_lost', err: err.message }, 'LISTEN connection lost');
      this.retry(client);
    });
    client.on('end', () => this.retry(client));
    await client.connect();
    await client.query(`LISTEN ${LIVE_CHANNEL}`);
    this.client = client;
    if (this.attempt > 0) this.handlers.reconnected();
    this.attempt = 0;
  }

  private retry(client: pg.Client): void {
    if (this.stopped || this.client !== client) return;
    this.client = null;
    const delay = Math.min(RECONNECT_MAX_MS, 200 * 2 ** this.attempt++);
    this.timer = setTimeout(() => {
      this.connect().catch((err: unknown) => {
        this.logger.warn({ event: 'live.listen_failed', err }, 'could not LISTEN; retrying');
        this.client = client; // so that retry() proceeds
        this.retry(client);
      });
    }, delay);
    this.timer.unref();
  }
}
