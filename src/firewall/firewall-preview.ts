import type { Actor } from '../auth/roles.ts';
import type { Config } from '../config.ts';
import type { InventorySource } from '../hosts/inventory-source.ts';
import { ConflictError, HostUnreachableError, NotFoundError } from '../http/errors.ts';
import { moduleResult } from '../reconciler/kind.ts';
import type { RunsService } from '../runs/runs-service.ts';
import { FIREWALL_MODULE } from './firewall-kind.ts';
import type { FirewallKind } from './firewall-kind.ts';

const PREVIEW_PLAYBOOK = { name: 'firewall_preview', file: 'firewall_preview.yml' };

/** Hooks routeplane's table uses, with the chain each sits in. */
const OUR_HOOKS = new Set(['input', 'forward', 'output', 'prerouting', 'postrouting']);

/** A base chain of another table on one of routeplane's hooks, as the module reports it. */
interface OtherHook {
  family: string;
  table: string;
  chain: string;
  hook: string;
  type?: string;
  policy?: string;
  prio?: number;
}

export interface FirewallPreviewResult {
  host: string;
  run_id: string;
  managed: boolean;
  table: string | null;
  valid: boolean;
  error: string | null;
  rule_id: string | null;
  warnings: string[];
}

/** Why another table on the same hook matters: nftables evaluates every table on a hook. */
function warningOf(h: OtherHook): string {
  const where = `table ${h.family} ${h.table} (chain ${h.chain}, ${h.type ?? 'filter'} hook ${h.hook}${h.prio === undefined ? '' : `, priority ${h.prio}`}${h.policy ? `, policy ${h.policy}` : ''})`;
  if (h.policy === 'drop') {
    return `${where} also sees these packets and drops what it does not accept: a packet routeplane accepts can still be dropped there`;
  }
  return `${where} also sees these packets: a drop there is final whatever routeplane accepts, and routeplane's drops are final for it`;
}

/**
 * The table the next apply would put on a host, checked by nft (`nft -c`) on the host itself,
 * applying nothing; with warnings for other tables hooked where routeplane's is, and for
 * candidate routes through the host whose destination its forward chain would drop.
 */
export class FirewallPreview {
  constructor(
    private readonly config: Pick<Config, 'playbooksDir'>,
    private readonly inventory: InventorySource,
    private readonly kind: FirewallKind,
    private readonly managementAddresses: (hosts: string[]) => Promise<Record<string, string>>,
    private readonly runs: RunsService,
    /**
     * Warnings for the host as a candidate gateway (failover-checks.ts previewWarnings):
     * routes through it whose destination its forward chain would drop.
     */
    private readonly failoverWarnings: (host: string) => Promise<string[]> = async () => [],
  ) {}

  async preview(host: string, actor: Actor): Promise<FirewallPreviewResult> {
    const found = (await this.inventory.current()).hosts.get(host);
    if (!found) throw new NotFoundError(`host '${host}' is not in the inventory`);
    if (found.local) {
      throw new ConflictError(`host '${host}' is the controller itself: nothing to preview`, {
        host,
      });
    }
    const [rendered, mgmt, gatewayWarnings] = await Promise.all([
      this.kind.renderPresent(host),
      this.managementAddresses([host]),
      this.failoverWarnings(host),
    ]);
    const { run, done } = await this.runs.start({
      kind: 'playbook',
      playbookName: PREVIEW_PLAYBOOK.name,
      playbookRoot: this.config.playbooksDir,
      playbookFile: PREVIEW_PLAYBOOK.file,
      hosts: [host],
      limit: [host],
      extravars: {},
      hostVars: {
        [host]: {
          routeplane_firewall: rendered.args,
          routeplane_management_address: mgmt[host] ?? null,
        },
      },
      actor,
    });
    const ended = await done;
    const result = moduleResult(ended, host, FIREWALL_MODULE);
    const outcome = ended.summary[host];
    if (!result || outcome?.status === 'unreachable') {
      throw new HostUnreachableError(
        host,
        outcome?.msg ?? ended.error ?? `preview run ${ended.status}`,
        run.id,
      );
    }
    const data = result.data as {
      table?: string;
      nft_error?: string;
      rule?: string | null;
      other_hooks?: OtherHook[];
    };
    const valid = result.status === 'ok' || result.status === 'changed';
    return {
      host,
      run_id: run.id,
      managed: rendered.managed,
      table: data.table ?? null,
      valid,
      error: valid ? null : (result.msg ?? 'nft refused the table'),
      rule_id: valid ? null : (data.rule ?? null),
      warnings: [
        ...(data.other_hooks ?? []).filter((h) => OUR_HOOKS.has(h.hook)).map(warningOf),
        ...gatewayWarnings,
      ],
    };
  }
}
