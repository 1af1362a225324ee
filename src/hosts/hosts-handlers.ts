import type { Operations } from '../http/operations.ts';
import { PreparedJson, sendPrepared } from '../http/prepared-json.ts';
import { actorOf } from '../http/security.ts';
import { presentHost, presentState } from './hosts-presenter.ts';
import type { HostState } from './host-state.ts';
import type { HostsService, HostView } from './hosts-service.ts';

/**
 * A host's answer, serialized once per snapshot record (the store keeps one for up to a
 * second, and replaces it on every gather) and inventory entry: dashboards read the same
 * host over and over between gathers.
 */
const details = new WeakMap<object, { host: object; body: PreparedJson }>();

function hostDetail(view: HostView & { state: HostState }): PreparedJson {
  const key = view.record ?? view.state;
  const known = details.get(key);
  if (known && known.host === view.host) return known.body;
  const body = new PreparedJson({ ...presentHost(view), state: presentState(view.state) });
  details.set(key, { host: view.host, body });
  return body;
}

type HostOperations = Pick<
  Operations,
  'listHosts' | 'getHost' | 'listHostInterfaces' | 'getHostInterface'
>;

export function hostsHandlers(hosts: HostsService): HostOperations {
  return {
    // GET /v1/hosts
    listHosts: async (_req, res) => {
      res.json({ items: (await hosts.list()).map(presentHost) });
    },

    // GET /v1/hosts/{host}
    getHost: async (req, res) => {
      const refresh = String(req.query.refresh) === 'true';
      const view = await hosts.get(req.params.host!, refresh, actorOf(req));
      sendPrepared(res, hostDetail(view));
    },

    // GET /v1/hosts/{host}/interfaces
    listHostInterfaces: async (req, res) => {
      const { collectedAt, items } = await hosts.interfaces(req.params.host!);
      res.json({ host: req.params.host, collected_at: collectedAt.toISOString(), items });
    },

    // GET /v1/hosts/{host}/interfaces/{ifname}
    getHostInterface: async (req, res) => {
      res.json(await hosts.interface(req.params.host!, req.params.ifname!));
    },
  };
}
