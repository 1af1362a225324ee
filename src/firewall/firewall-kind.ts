import ipaddr from 'ipaddr.js';
import {
  moduleResult,
  type DesiredKind,
  type HostInRun,
  type RenderedHost,
} from '../reconciler/kind.ts';
import type { SyncUpdate } from '../routes/routes-store.ts';
import type { Run } from '../runs/types.ts';
import type { CheckAccept } from './failover-checks.ts';
import type { FirewallStore } from './firewall-store.ts';
import { refOf } from './rule-input.ts';
import type { FirewallSet } from './set-store.ts';
import type { FirewallRule } from './types.ts';

export const FIREWALL_MODULE = 'routeplane_firewall';

const v6 = (p: string) => ipaddr.parseCIDR(p)[0].kind() === 'ipv6';

/**
 * The nft name of a set a rule names: `s_<name>` (its addresses as `s_<name>_4` and `_6`),
 * `z_<zone>` for a zone's own networks (filled on the host by the module).
 */
function nftSetName(values: string[]): string | null {
  const ref = refOf(values);
  if (!ref) return null;
  return ref.kind === 'zone' ? `z_${ref.name}` : `s_${ref.name}`;
}

/** A rule as the template renders it: addresses split by family (firewall.nft.j2). */
export function templateRule(r: FirewallRule) {
  const values = (list: string[]) => (refOf(list) ? [] : list);
  const src = values(r.match.src);
  const dst = values(r.match.dst);
  return {
    id: r.id,
    chain: r.chain,
    family: r.family,
    protocol: r.protocol,
    src4: src.filter((p) => !v6(p)),
    src6: src.filter(v6),
    dst4: dst.filter((p) => !v6(p)),
    dst6: dst.filter(v6),
    src_set: nftSetName(r.match.src),
    dst_set: nftSetName(r.match.dst),
    sport: values(r.match.sport),
    dport: values(r.match.dport),
    sport_set: nftSetName(r.match.sport),
    dport_set: nftSetName(r.match.dport),
    iif: r.match.iif,
    oif: r.match.oif,
    action: r.action,
    to_addr: r.match.to?.address ?? null,
    to_port: r.match.to?.port ?? null,
  };
}

/** A set as the template declares it, its elements split by family. */
function templateSet(set: FirewallSet) {
  return set.type === 'port'
    ? { name: `s_${set.name}`, type: 'port', ports: set.elements }
    : {
        name: `s_${set.name}`,
        type: 'address',
        v4: set.elements.filter((p) => !v6(p)),
        v6: set.elements.filter(v6),
      };
}

/**
 * Why the host's new table was not confirmed, when its apply armed a revert and the confirm
 * over a new SSH connection then failed: the host puts the previous table back by itself.
 */
function unconfirmed(run: Run, host: string): string | null {
  const [applied, confirm] = run.results.filter(
    (r) => r.host === host && r.module === FIREWALL_MODULE,
  );
  if (!applied?.data.armed || !confirm || confirm.status === 'ok' || confirm.status === 'changed') {
    return null;
  }
  if (confirm.status === 'skipped') return null;
  const seconds = Number(applied.data.confirm_s);
  return (
    `the new firewall table was not confirmed over a new SSH connection within ${seconds} s; ` +
    `the host reverts to the previous table (${confirm.msg ?? confirm.status})`
  );
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
    /** The sets each host's rules may name (set-service.ts visibleSets). */
    private readonly setsOf: (hosts: string[]) => Promise<Map<string, Map<string, FirewallSet>>>,
    /** Per host, the addresses every live replica reaches it from: all are management. */
    private readonly replicasOf: (hosts: string[]) => Promise<Map<string, string[]>> = async () =>
      new Map(),
    /**
     * Per host, the input accepts for the checks of the candidate routes that name one of its
     * addresses (failover-checks.ts): rendered like management, never stored as rules.
     */
    private readonly checksOf: (
      hosts: string[],
    ) => Promise<Map<string, CheckAccept[]>> = async () => new Map(),
  ) {}

  async render(hosts: string[]): Promise<Map<string, RenderedHost>> {
    return this.renderAs(hosts, false);
  }

  /**
   * What the next apply would put on the host, as if it were managed (preview): its state
   * as render gives it besides.
   */
  async renderPresent(host: string): Promise<{ args: Record<string, unknown>; managed: boolean }> {
    const managed = (await this.store.managed([host])).get(host) === true;
    const rendered = (await this.renderAs([host], true)).get(host)!;
    return { args: rendered.args as Record<string, unknown>, managed };
  }

  private async renderAs(hosts: string[], present: boolean): Promise<Map<string, RenderedHost>> {
    const managedOf = this.store.managed(hosts);
    // Only the tables rendered present read the candidate routes: a host whose firewall
    // routeplane leaves alone costs no query more.
    const checksOf = managedOf.then((m) => {
      const rendered = present ? hosts : hosts.filter((h) => m.get(h) === true);
      return rendered.length > 0 ? this.checksOf(rendered) : new Map<string, CheckAccept[]>();
    });
    const [managed, rows, sets, replicas, checks] = await Promise.all([
      managedOf,
      this.store.settleable(hosts),
      this.setsOf(hosts),
      this.replicasOf(hosts),
      checksOf,
    ]);
    // A route's openings render only while the route is active, whatever their own status
    // says between the route's change and theirs.
    const linked = [...rows.values()].flat().flatMap((r) => (r.routeId ? [r.routeId] : []));
    const activeRoutes = await this.store.activeRoutes([...new Set(linked)]);
    return new Map(
      hosts.map((h) => {
        const mine = rows.get(h) ?? [];
        const settles: SettledRule[] = mine.map((r) => ({ id: r.id }));
        const state = present ? true : managed.get(h);
        if (state === undefined) return [h, { args: { state: 'unmanaged' }, settles }];
        if (state === false) return [h, { args: { state: 'absent', rules: [] }, settles }];
        const rules = mine
          .filter((r) => r.status === 'active' && (!r.routeId || activeRoutes.has(r.routeId)))
          .map(templateRule);
        // Only the sets its rules name: a group's big blocklist stays off hosts that ignore it.
        const named = new Set(
          rules.flatMap((r) => [r.src_set, r.dst_set, r.sport_set, r.dport_set]),
        );
        const mySets = [...(sets.get(h)?.values() ?? [])]
          .filter((set) => named.has(`s_${set.name}`))
          .map(templateSet);
        return [
          h,
          {
            args: {
              state: 'present',
              rules,
              sets: mySets,
              management: replicas.get(h) ?? [],
              failover_checks: checks.get(h) ?? [],
              confirm_s: this.confirmS,
            },
            settles,
          },
        ];
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
      const reason =
        task?.msg ??
        run.summary[h.host]?.msg ??
        run.error ??
        `apply run ${run.status} before reaching ${h.host}`;
      const error = unconfirmed(run, h.host) ?? reason;
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
