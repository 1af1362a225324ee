import path from 'node:path';
import type { Actor } from '../auth/roles.ts';
import type { Config } from '../config.ts';
import { HostUnreachableError, NotFoundError } from '../http/errors.ts';
import type { RunsService } from '../runs/runs-service.ts';
import type { Run } from '../runs/types.ts';
import { stateFromModuleData, type HostState, type Link, type Address } from './host-state.ts';
import type { HostRecord, HostStateStore } from './host-state-store.ts';
import { publicVars, type InventoryHost } from './inventory.ts';
import type { InventorySource } from './inventory-source.ts';

export interface HostView {
  host: InventoryHost;
  vars: Record<string, unknown>;
  readOnly: boolean;
  record: HostRecord | null;
}

export interface Interface extends Link {
  addresses: Address[];
}

const GATHER_PLAYBOOK = 'gather_state.yml';
const SYSTEM_ACTOR: Actor = { name: 'routeplane', role: 'admin' };

/** The fleet as the inventory declares it, with each host's last known state. */
export class HostsService {
  /** The gather going now for each host, which every refresh of that host shares. */
  private readonly gathers = new Map<string, Promise<void>>();
  /** Each inventory entry's public vars, worked out once per inventory load. */
  private readonly publicVarsOf = new WeakMap<InventoryHost, Record<string, unknown>>();
  /** When each host's last gather of this process ended, and how. */
  private readonly lastGather = new Map<string, { at: number; error: Error | null }>();

  constructor(
    private readonly config: Pick<
      Config,
      'allowLocalWrites' | 'playbooksDir' | 'refreshMinIntervalMs'
    >,
    private readonly inventory: InventorySource,
    private readonly store: HostStateStore,
    private readonly runs: RunsService,
  ) {
    runs.onRunFinished((run) => this.recordRun(run));
  }

  private view(host: InventoryHost, record: HostRecord | null): HostView {
    let vars = this.publicVarsOf.get(host);
    if (!vars) this.publicVarsOf.set(host, (vars = publicVars(host.vars)));
    return {
      host,
      vars,
      readOnly: host.local && !this.config.allowLocalWrites,
      record,
    };
  }

  async list(): Promise<HostView[]> {
    const [inv, records] = await Promise.all([this.inventory.current(), this.store.all()]);
    return [...inv.hosts.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((h) => this.view(h, records.get(h.name) ?? null));
  }

  private async inventoryHost(name: string): Promise<InventoryHost> {
    const host = (await this.inventory.current()).hosts.get(name);
    if (!host) throw new NotFoundError(`Host '${name}' is not in the inventory`);
    return host;
  }

  /**
   * The host with its state: the last gather, or a new one when asked or never gathered.
   * Refreshes of one host share one gather (single flight), and a gather that ended within
   * REFRESH_MIN_INTERVAL_S answers them as it is (its failure too): a storm of viewers costs
   * at most a gather per interval, and never a queue of runs ahead of a write.
   */
  async get(
    name: string,
    refresh: boolean,
    actor: Actor = SYSTEM_ACTOR,
  ): Promise<HostView & { state: HostState }> {
    const host = await this.inventoryHost(name);
    let record = await this.store.get(name);
    if (refresh || !record?.state) {
      await this.gatherShared(name, actor, record?.state ?? null);
      record = await this.store.get(name);
    }
    if (!record?.state)
      throw new HostUnreachableError(name, 'The host has never been gathered', null);
    return { ...this.view(host, record), state: record.state };
  }

  async interfaces(name: string): Promise<{ collectedAt: Date; items: Interface[] }> {
    const { state } = await this.get(name, false);
    return {
      collectedAt: state.collectedAt,
      items: state.links.map((l) => ({
        ...l,
        addresses: state.addresses.filter((a) => a.ifname === l.ifname),
      })),
    };
  }

  async interface(name: string, ifname: string): Promise<Interface> {
    const found = (await this.interfaces(name)).items.find((i) => i.ifname === ifname);
    if (!found) throw new NotFoundError(`Host '${name}' has no interface '${ifname}'`);
    return found;
  }

  private gatherShared(name: string, actor: Actor, known: HostState | null): Promise<void> {
    const inFlight = this.gathers.get(name);
    if (inFlight) return inFlight;
    const last = this.lastGather.get(name);
    const recent = (at: number) => Date.now() - at < this.config.refreshMinIntervalMs;
    if (known && recent(known.collectedAt.getTime())) return Promise.resolve();
    if (last && recent(last.at)) return last.error ? Promise.reject(last.error) : Promise.resolve();
    const gather = this.gather(name, actor).then(
      () => void this.lastGather.set(name, { at: Date.now(), error: null }),
      (error: Error) => {
        this.lastGather.set(name, { at: Date.now(), error });
        throw error;
      },
    );
    const shared = gather.finally(() => this.gathers.delete(name));
    this.gathers.set(name, shared);
    return shared;
  }

  private async gather(name: string, actor: Actor): Promise<void> {
    const { done } = await this.runs.start({
      kind: 'gather',
      playbookName: 'gather_state',
      playbookRoot: this.config.playbooksDir,
      playbookFile: path.basename(GATHER_PLAYBOOK),
      hosts: [name],
      limit: [name],
      extravars: {},
      actor,
    });
    const run = await done;
    const outcome = run.summary[name];
    if (
      run.status !== 'succeeded' ||
      !outcome ||
      outcome.status === 'unreachable' ||
      outcome.status === 'failed'
    ) {
      throw new HostUnreachableError(
        name,
        outcome?.msg ?? run.error ?? `gather run ${run.status}`,
        run.id,
      );
    }
  }

  /** Every run tells us something about its hosts: reachability, and for gathers the state. */
  private async recordRun(run: Run): Promise<void> {
    const at = run.finishedAt ?? new Date();
    for (const [host, outcome] of Object.entries(run.summary)) {
      await this.store.recordReachability(host, outcome.status !== 'unreachable', outcome.msg, at);
    }
    if (run.kind !== 'gather') return;
    for (const r of run.results) {
      if (r.status === 'ok' && r.task === 'routeplane_state') {
        await this.store.saveState(r.host, stateFromModuleData(r.data, run.id, at));
      }
    }
  }
}
