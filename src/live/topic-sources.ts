import type { InventorySource } from '../hosts/inventory-source.ts';
import type { TopicSources } from '../ws/hub.ts';
import type { TopicMatch } from '../ws/protocol.ts';
import type { DesiredFeeds } from './desired-feeds.ts';
import type { HostFeed } from './host-feed.ts';
import { HOSTS_PREFIX, hostTopic } from './host-topic.ts';
import type { TopicLog } from './topic-log.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What each topic pattern of the contract stands for: its subject, and how it is seeded. */
export function topicSources(deps: {
  inventory: InventorySource;
  log: Pick<TopicLog, 'topicsUnder'>;
  hosts: HostFeed;
  desired: DesiredFeeds;
}): TopicSources {
  return {
    async missing(match) {
      if (match.pattern === 'hosts/{host}') {
        const inv = await deps.inventory.current();
        return inv.hosts.has(match.param!) ? null : `no host '${match.param}' in the inventory`;
      }
      if (match.pattern === 'runs/{id}') {
        if (!UUID.test(match.param!)) return 'a run id is a UUID';
        return (await deps.desired.seedRun(match.param!)) ? null : `no run ${match.param}`;
      }
      return null;
    },
    async seed(match: Extract<TopicMatch, { kind: 'topic' }>) {
      if (match.pattern === 'hosts/{host}') await deps.hosts.seed(match.param!);
    },
    async members(prefix) {
      if (prefix !== HOSTS_PREFIX) return [];
      const inv = await deps.inventory.current();
      const names = [...inv.hosts.keys()].sort();
      // One read for the topics that exist: a fleet of 1,000 hosts is not 1,000 queries.
      const known = new Set(await deps.log.topicsUnder(prefix));
      const missing = names.filter((h) => !known.has(hostTopic(h)));
      if (missing.length > 0) await deps.hosts.refreshed(missing);
      return names.map(hostTopic);
    },
  };
}
