import { Router } from 'express';
import { actorOf } from '../http/security.ts';
import { presentHost, presentState } from './hosts-presenter.ts';
import type { HostsService } from './hosts-service.ts';

export function hostsHandlers(hosts: HostsService): Router {
  const r = Router();

  r.get('/v1/hosts', async (_req, res) => {
    res.json({ items: (await hosts.list()).map(presentHost) });
  });

  r.get('/v1/hosts/:host', async (req, res) => {
    const refresh = String(req.query.refresh) === 'true';
    const view = await hosts.get(req.params.host, refresh, actorOf(req));
    res.json({ ...presentHost(view), state: presentState(view.state) });
  });

  r.get('/v1/hosts/:host/interfaces', async (req, res) => {
    const { collectedAt, items } = await hosts.interfaces(req.params.host);
    res.json({ host: req.params.host, collected_at: collectedAt.toISOString(), items });
  });

  r.get('/v1/hosts/:host/interfaces/:ifname', async (req, res) => {
    res.json(await hosts.interface(req.params.host, req.params.ifname));
  });

  return r;
}
