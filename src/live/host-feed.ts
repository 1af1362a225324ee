import type { Config } from '../config.ts';
import type { HostState } from '../hosts/host-state.ts';
import type { HostRecord, HostStateStore } from '../hosts/host-state-store.ts';
import type { InventorySource } from '../hosts/inventory-source.ts';
import type { Logger } from '../logger.ts';
import { stableJson } from './stable-json.ts';
import { hostTopic, stateObjects, type WatchInfo } from './host-topic.ts';
import type { TopicLog } from './topic-log.ts';

const META_FRESH_MS = 5_000;

/** Told a host's fresh state, to compare with what it should hold (drift). */
export type StateObserver = (host: string, state: HostState) => Promise<void>;

/**
 * Each host's topic: its `host` object (inventory facts, reachability, how it is watched),
 * and one object per link, address and route of its last known state. Fed by the host's
 * watcher (on the replica holding its lease) and by every run that reaches it; stores each
 * new state as the host's snapshot (GET /v1/hosts/{host}).
 */
export class HostFeed {
  /** Digest of each host's last stored state: a re-read that found nothing new writes nothing. */
  private readonly lastState = new Map<string, string>();
  /**
   * What this process last published as each host's `host` object, and when: the same again
   * within META_FRESH_MS needs no transaction (a burst of re-reads). Short, because another
   * replica's run may have published the object since.
   */
  private readonly lastMeta = new Map<string, { digest: string; at: number }>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly observers: StateObserver[] = [];

  constructor(
    private readonly log: TopicLog,
    private readonly states: HostStateStore,
    private readonly inventory: InventorySource,
    private readonly config: Pick<Config, 'routeProto' | 'allowLocalWrites' | 'watchHosts'>,
    private readonly logger: Logger,
  ) {}

  onState(fn: StateObserver): void {
    this.observers.push(fn);
  }

  /**
   * A host's watcher read its state: stored, streamed, and checked for drift. A re-read that
   * found nothing new only moves the snapshot's `collected_at`: no topic write at all.
   */
  observed(host: string, state: HostState, watch: WatchInfo): Promise<void> {
    return this.serial(host, async () => {
      const digest = stableJson({ ...state, collectedAt: null, runId: null });
      if (this.lastState.get(host) !== digest) {
        await this.states.saveState(host, state);
        await this.publishState(host, state);
        this.lastState.set(host, digest);
      } else {
        await this.states.touch(host, state.collectedAt);
      }
      // It was just read: reachable, whatever the snapshot table said a moment ago.
      await this.publishMeta(host, { reachable: true, lastError: null }, watch);
      for (const fn of this.observers) await fn(host, state);
    });
  }

  /** How the host is watched changed (connected, lost, not watchable). */
  watchChanged(host: string, watch: WatchInfo): Promise<void> {
    return this.serial(host, async () => {
      if (watch.state === 'unreachable') {
        // Its routes are not reported removed: the last state stays, marked unreachable.
        await this.states.recordReachability(host, false, watch.error, new Date());
      } else if (watch.state === 'watching') {
        await this.states.recordReachability(host, true, null, new Date());
      }
      await this.publishMeta(host, await this.states.get(host), watch);
    });
  }

  /** After a run reached these hosts: their reachability, and a gather's state. */
  refreshed(hosts: string[]): Promise<void> {
    return Promise.all(
      hosts.map((host) =>
        this.serial(host, async () => {
          const record = await this.states.get(host);
          if (record?.state) await this.publishState(host, record.state);
          await this.publishMeta(host, record, null);
        }),
      ),
    ).then(() => undefined);
  }

  /** A host's topic before its first subscriber: what the snapshot table knows. */
  async seed(host: string): Promise<void> {
    if (await this.log.exists(hostTopic(host))) return;
    await this.refreshed([host]);
  }

  private async publishState(host: string, state: HostState): Promise<void> {
    await this.log.publish(hostTopic(host), {
      scope: 'state',
      objects: stateObjects(state, this.config.routeProto),
    });
  }

  /** `watch` null: as the topic says now (another replica may be the one watching). */
  private async publishMeta(
    host: string,
    record: Pick<HostRecord, 'reachable' | 'lastError'> | null,
    watch: WatchInfo | null,
  ) {
    const inv = (await this.inventory.current()).hosts.get(host);
    if (!inv) return;
    const topic = hostTopic(host);
    const known = watch
      ? undefined
      : ((await this.log.get(topic, 'host')) as { watch?: WatchInfo } | undefined);
    const off: WatchInfo = { state: 'off', error: null, since: new Date(0).toISOString() };
    const meta = {
      name: host,
      groups: inv.groups,
      local: inv.local,
      read_only: inv.local && !this.config.allowLocalWrites,
      reachable: record?.reachable ?? null,
      last_error: record?.lastError ?? null,
      watch: watch ?? known?.watch ?? off,
    };
    const digest = stableJson(meta);
    const last = this.lastMeta.get(host);
    if (last?.digest === digest && Date.now() - last.at < META_FRESH_MS) return;
    await this.log.publish(topic, { scope: 'meta', objects: { host: meta } });
    this.lastMeta.set(host, { digest, at: Date.now() });
  }

  /** One host's updates one after another: its topic's messages keep their order. */
  private serial(host: string, fn: () => Promise<void>): Promise<void> {
    const next = (this.chains.get(host) ?? Promise.resolve()).then(fn).catch((err: unknown) => {
      this.logger.warn({ event: 'live.host_publish_failed', host, err }, 'could not publish');
    });
    this.chains.set(host, next);
    void next.then(() => {
      if (this.chains.get(host) === next) this.chains.delete(host);
    });
    return next;
  }
}
