import type { LifecycleStatus } from '../lifecycle/status.ts';
import type { SyncState } from '../routes/types.ts';

export const CHAINS = ['input', 'forward', 'output', 'prerouting', 'postrouting'] as const;
export type Chain = (typeof CHAINS)[number];
export type RuleFamily = 'ip' | 'ip6' | 'inet';
export type Protocol = 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'any';
export type RuleAction = 'accept' | 'drop' | 'reject' | 'dnat' | 'snat' | 'masquerade';

/** What a rule matches besides its chain, family and protocol: canonical, as rendered. */
export interface RuleMatch {
  src: string[];
  dst: string[];
  sport: string[];
  dport: string[];
  iif: string | null;
  oif: string | null;
  /** dnat's and snat's target. */
  to: { address: string; port: number | null } | null;
}

/** Everything that makes a rule what it is (its identity): all but comment and schedule. */
export interface RuleSpec {
  host: string;
  chain: Chain;
  family: RuleFamily;
  protocol: Protocol;
  match: RuleMatch;
  action: RuleAction;
  priority: number;
}

export interface FirewallRule extends RuleSpec {
  id: string;
  comment: string | null;
  /** The route this rule opens traffic for (its `allow`), which it follows; null if none. */
  routeId: string | null;
  createAt: Date | null;
  deleteAt: Date | null;
  status: LifecycleStatus;
  sync: {
    state: SyncState;
    error: string | null;
    retryAt: Date | null;
    syncedAt: Date | null;
    lastRunId: string | null;
  };
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  removedAt: Date | null;
  removedReason: 'expired' | 'deleted' | null;
  removedBy: string | null;
}
