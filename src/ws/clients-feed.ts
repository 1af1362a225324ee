import type { Logger } from '../logger.ts';
import type { TopicLog } from '../live/topic-log.ts';
import type { Hub } from './hub.ts';

export const CLIENTS_TOPIC = 'clients';
const COALESCE_MS = 200;

/**
 * The admin-only `clients` topic: every WebSocket client of every replica (who, which
 * topics, since when), each replica's clients one scope of it. A replica that died leaves
 * its scope behind until a live one sweeps it (at start-up).
 */
export class ClientsFeed {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly log: TopicLog,
    private readonly hub: Hub,
    private readonly instance: string,
    private readonly logger: Logger,
  ) {
    hub.onClientsChanged(() => {
      this.timer ??= setTimeout(() => void this.publish(), COALESCE_MS);
    });
  }

  /** Removes the clients of replicas that are gone. */
  async sweep(deadAmong: (owners: string[]) => Promise<string[]>): Promise<void> {
    const scopes = (await this.log.scopes(CLIENTS_TOPIC)).filter((s) => s !== this.instance);
    for (const dead of await deadAmong(scopes)) {
      await this.log.publish(CLIENTS_TOPIC, { scope: dead, objects: {} });
    }
  }

  async publish(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const objects: Record<string, unknown> = {};
    for (const c of this.hub.describe()) {
      objects[`${this.instance}/${c.id}`] = { ...c, instance: this.instance };
    }
    await this.log
      .publish(CLIENTS_TOPIC, { scope: this.instance, objects })
      .catch((err: unknown) =>
        this.logger.warn({ event: 'live.clients_publish_failed', err }, 'could not publish'),
      );
  }

  /** This replica's clients leave the topic (shutdown). */
  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.log.publish(CLIENTS_TOPIC, { scope: this.instance, objects: {} }).catch(() => null);
  }
}
