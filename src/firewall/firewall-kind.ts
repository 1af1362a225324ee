import ipaddr from 'ipaddr.js';
import {
  moduleResult,
  type DesiredKind,
  type HostInRun,
  type RenderedHost,
} from '../reconciler/kind.ts';
import type { SyncUpdate } from '../routes/routes-store.ts';
import type { Run } from '../runs/types.ts';
import type { FirewallStore } from './firewall-store.ts';
import type { FirewallRule } from './types.ts';

export const FIREWALL_MODULE = 'routeplane_firewall';

/** A rule as the template renders it: addresses split by family (firewall.nft.j2). */
export function templateRule(r: FirewallRule) {
  const v6 = (p: string) => ipaddr.parseCIDR(p)[0].kind() === 'ipv6';
  return {
    id: r.id,
    chain: r.chain,
    family: r.family,
    protocol: r.protocol,
    src4: r.match.src.filter((p) => !v6(p)),
    src6: r.match.src.filter(v6),
    dst4: r.match.dst.filter((p) => !v6(p)),
    dst6: r.match.dst.filter(v6),
    sport: r.match.sport,
    dport: r.match.dport,
    iif: r.match.iif,
    oif: r.match.oif,
    action: r.action,
    to_addr: r.match.to?.address ?? null,
    to_port: r.match.to?.port ?? null,
  };
}

interface SettledRule {
  id: string;
}

/**
 * Firewall rules as a kind of desired state: each managed host's active rules rendered into
 * routeplane's table by the template, replaced atomically by routeplane_firewall. A host is
 * left alone until its first rule, and its table removed once it is released.
 */
export class FirewallKind implements DesiredKind {
  readonly name = 'firewall';
  readonly module = FIREWALL_MODULE;

  constructor(
    private readonly store: FirewallStore,
    /** FIREWALL_CONFIRM_S: the on-host revert fires unless confirmed within this. */
    private readonly confirmS: number,
  ) {}

  async render(hosts: string[]): Promise<Map<string, RenderedHost>> {
    const [managed, rows] = await Promise.all([
      this.store.managed(hosts),
      this.store.settleable(hosts),
    ]);
    return new Map(
      hosts.map((h) => {
        const mine = rows.get(h) ?? [];
        const settles: SettledRule[] = mine.map((r) => ({ id: r.id }));
        const state = managed.get(h);
        if (state === undefined) return [h, { args: { state: 'unmanaged' }, settles }];
        if (state === false) return [h, { args: { state: 'absent', rules: [] }, settles }];
        const rules = mine.filter((r) => r.status === 'active').map(templateRule);
        return [h, { args: { state: 'present', rules, confirm_s: this.confirmS }, settles }];
      }),
    );
  }

  async settle(run: Run, hosts: HostInRun[]): Promise<Map<string, string | null>> {
    const problems = new Map<string, string | null>();
    const updates: SyncUpdate[] = [];
    for (const h of hosts) {
      const rows = (h.rendered?.settles as SettledRule[] | undefined) ?? [];
      const state = (h.rendered?.args as { state?: string } | undefined)?.state;
      if (state === 'unmanaged' && rows.length === 0) {
        problems.set(h.host, null);
        continue;
      }
      const task = moduleResult(run, h.host, FIREWALL_MODULE);
      const ok = task && (task.status === 'ok' || task.status === 'changed');
      if (ok) {
        problems.set(h.host, null);
        for (const r of rows) {
          updates.push({
            id: r.id,
            state: 'in_sync',
            error: null,
            conflict: null,
            retryAt: null,
            runId: run.id,
          });
        }
        continue;
      }
      const error =
        task?.msg ??
        run.summary[h.host]?.msg ??
        run.error ??
        `apply run ${run.status} before reaching ${h.host}`;
      const culprit = (task?.data.rule as string | null | undefined) ?? null;
      problems.set(h.host, error);
      for (const r of rows) {
        updates.push({
          id: r.id,
          state: 'failed',
          error:
            culprit && culprit !== r.id
              ? `not applied: rule ${culprit} was refused: ${error}`
              : error,
          conflict: null,
          retryAt: h.retryAt,
          runId: run.id,
        });
      }
    }
    await this.store.recordSync(updates);
    return problems;
  }

  nothing(): RenderedHost {
    return { args: { state: 'unmanaged' } };
  }

  hostsWithObjects(): Promise<string[]> {
    return this.store.managedHosts();
  }
}
