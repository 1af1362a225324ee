import type { Config } from '../config.ts';
import { ConflictError, PayloadTooLargeError, ValidationError } from '../http/errors.ts';
import { resolveTargets, type Inventory } from './inventory.ts';

/** How a kind names its objects in these errors: "routes", "rules". */
export interface TargetNouns {
  objects: string;
  /** What ALLOW_LOCAL_WRITES lets routeplane manage: "its routes", "its firewall". */
  managed: string;
}

type TargetConfig = Pick<Config, 'allowLocalWrites' | 'maxBatchItems'>;

/**
 * The hosts each item of a write names (a host, or a group expanded to its members), checked
 * before anything is parsed or stored: more objects than MAX_BATCH_ITEMS once groups are
 * expanded is a 413 (a 500-host group times 20,000 items would be ten million rows, and as
 * many objects in one run), a name the inventory does not have a 400 on the item's host, and
 * the controller itself a 409 unless ALLOW_LOCAL_WRITES.
 */
export function writeTargets(
  inputs: { input: { host: string }; base: string }[],
  inv: Inventory,
  config: TargetConfig,
  nouns: TargetNouns,
): string[][] {
  const expanded = inputs.reduce(
    (n, { input }) => n + resolveTargets(inv, [input.host]).hosts.length,
    0,
  );
  if (expanded > config.maxBatchItems) {
    throw new PayloadTooLargeError(
      `the request asks for ${expanded} ${nouns.objects} once groups are expanded; at most MAX_BATCH_ITEMS (${config.maxBatchItems}) per request`,
    );
  }
  return inputs.map(({ input, base }) => {
    const { hosts, unknown } = resolveTargets(inv, [input.host]);
    if (unknown.length > 0 || hosts.length === 0) {
      throw ValidationError.field(
        `${base}/host`,
        `'${input.host}' is not a host or group of the inventory`,
      );
    }
    const local = hosts.filter((h) => inv.hosts.get(h)?.local);
    if (local.length > 0 && !config.allowLocalWrites) {
      throw new ConflictError(
        `${local.join(', ')} is the machine routeplane runs on and is read-only; set ALLOW_LOCAL_WRITES=true to manage ${nouns.managed}`,
        { field: `${base}/host` },
      );
    }
    return hosts;
  });
}
