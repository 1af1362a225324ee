import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InventoryHost } from '../../hosts/inventory.ts';
import {
  watchConnection,
  type WatchConnection,
  type WatchConnectionOptions,
} from '../../live/watch/watch-connection.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export type ProbeConnectionOptions = Omit<WatchConnectionOptions, 'program'>;

/**
 * How a checking point's prober is started: over the host's watch connection (same ssh
 * settings, same runner master), or a local python for the controller (`host` null). A host
 * the watcher cannot reach (`watched: false`) gets no prober: its checks belong on the
 * controller, and that decision is the same as `watchConnection(host).watched`.
 */
export function probeConnection(
  host: Pick<InventoryHost, 'name' | 'vars' | 'local'> | null,
  options: ProbeConnectionOptions = {},
): WatchConnection {
  const on = host ?? { name: 'controller', vars: { ansible_connection: 'local' }, local: true };
  return watchConnection(on, { ...options, program: 'probe' });
}

/** The prober's source (playbooks/probe/routeplane_probe.py), read each time it is called. */
export function loadProbeScript(options: { playbooksDir?: string } = {}): Promise<string> {
  const dir = options.playbooksDir ?? path.join(REPO, 'playbooks');
  return readFile(path.join(dir, 'probe', 'routeplane_probe.py'), 'utf8');
}
