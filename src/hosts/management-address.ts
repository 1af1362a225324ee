import { isIP } from 'node:net';
import { execa } from 'execa';
import type { InventorySource } from './inventory-source.ts';

/** Routes on the controller change rarely; a run per write must not pay a process per host. */
const CACHE_MS = 30_000;

/**
 * The address each host sees routeplane's connections come from: the `src` the controller's
 * kernel picks towards the host's ansible_host (`ip route get`). A route on the host that
 * captures it would cut routeplane off, so the apply module protects it. Not computed (the
 * module then relies on SSH_CONNECTION, or fails closed) for local hosts and for hosts named
 * by a DNS name, which routeplane does not resolve.
 */
export class ManagementAddresses {
  private readonly cache = new Map<string, { at: number; src: string | null }>();

  constructor(private readonly inventory: InventorySource) {}

  async of(hosts: string[]): Promise<Record<string, string>> {
    const inv = await this.inventory.current();
    const out: Record<string, string> = {};
    await Promise.all(
      hosts.map(async (h) => {
        const host = inv.hosts.get(h);
        if (!host || host.local) return;
        const target = String(host.vars.ansible_host ?? host.vars.ansible_ssh_host ?? h);
        const src = await this.sourceTowards(target.replace(/^\[|\]$/g, ''));
        if (src) out[h] = src;
      }),
    );
    return out;
  }

  private async sourceTowards(address: string): Promise<string | null> {
    if (!isIP(address)) return null;
    const hit = this.cache.get(address);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.src;
    const family = isIP(address) === 6 ? '-6' : '-4';
    // Argument array, and the address was checked to be an IP literal: never a shell.
    const res = await execa('ip', ['-j', family, 'route', 'get', address], {
      reject: false,
      timeout: 5_000,
    });
    let src: string | null = null;
    if (res.exitCode === 0) {
      try {
        const [route] = JSON.parse(String(res.stdout)) as { prefsrc?: string }[];
        src = route?.prefsrc ?? null;
      } catch {
        src = null;
      }
    }
    this.cache.set(address, { at: Date.now(), src });
    return src;
  }
}
