import { isIP } from 'node:net';
import { execa } from 'execa';
import ipaddr from 'ipaddr.js';
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

  constructor(
    private readonly inventory: InventorySource,
    /** Told what was computed (ReplicaAddresses.record): other replicas keep it open. */
    private readonly known: (addresses: Record<string, string>) => Promise<void> = async () =>
      undefined,
  ) {}

  async of(hosts: string[]): Promise<Record<string, string>> {
    const inv = await this.inventory.current();
    const targets = new Map<string, string>();
    for (const h of hosts) {
      const host = inv.hosts.get(h);
      if (!host || host.local) continue;
      const target = String(host.vars.ansible_host ?? host.vars.ansible_ssh_host ?? h);
      const address = target.replace(/^\[|\]$/g, '');
      if (isIP(address)) targets.set(h, address);
    }
    await this.refresh([...new Set(targets.values())]);
    const out: Record<string, string> = {};
    for (const [h, address] of targets) {
      const src = this.cache.get(address)?.src;
      if (src) out[h] = src;
    }
    await this.known(out);
    return out;
  }

  /**
   * Looks up every address not cached (or cached too long ago) with one `ip -batch`: a run of
   * 100 hosts starts one process, not 100 (each a fork of this whole service).
   */
  private async refresh(addresses: string[]): Promise<void> {
    const now = Date.now();
    const stale = addresses.filter((a) => {
      const hit = this.cache.get(a);
      return !hit || now - hit.at >= CACHE_MS;
    });
    if (stale.length === 0) return;
    // Every address was checked to be an IP literal: a line of data, never a command of ours.
    const res = await execa('ip', ['-j', '-force', '-batch', '-'], {
      input: stale.map((a) => `route get ${a}\n`).join(''),
      reject: false,
      timeout: 5_000,
    });
    // One JSON array per command that succeeded; a failed one prints only to stderr, so the
    // answers are matched by their dst, not by position.
    const found = new Map<string, string | null>();
    for (const line of String(res.stdout ?? '').split('\n')) {
      if (!line.trim()) continue;
      try {
        const [route] = JSON.parse(line) as { dst?: string; prefsrc?: string }[];
        if (route?.dst) found.set(canonical(route.dst), route.prefsrc ?? null);
      } catch {
        // not a JSON line: skip it
      }
    }
    for (const a of stale) this.cache.set(a, { at: now, src: found.get(canonical(a)) ?? null });
  }
}

/** One spelling per address, for matching ip's answer to what was asked. */
function canonical(address: string): string {
  try {
    return ipaddr.process(address).toString();
  } catch {
    return address;
  }
}
