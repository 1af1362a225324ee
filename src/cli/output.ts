import { formatAllowSpec } from './allow-spec.ts';
import type {
  FirewallRule,
  FirewallRuleEvent,
  FirewallSet,
  FirewallSetApplyHost,
  FirewallSetEvent,
  Route,
} from './api-client.ts';

/** Longest cell a table shows; `show` prints a value whole. */
const MAX_CELL = 60;

/**
 * Server strings include whatever users typed (comments, host errors): control characters
 * would move the cursor or recolour the terminal, so they never reach it raw.
 */
function clean(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\t\n\r]/g, ' ').replace(/[\u0000-\u001f\u007f-\u009f]/g, '\ufffd');
}

/** A value as one cell: `-` for nothing, timestamps without milliseconds. */
export function cell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  if (Array.isArray(value)) return value.length ? value.map(cell).join(',') : '-';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'object') return clean(JSON.stringify(value));
  const text = clean(String(value));
  return /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/.test(text) ? text.replace(/\.\d+Z$/, 'Z') : text;
}

function clip(text: string): string {
  return text.length > MAX_CELL ? `${text.slice(0, MAX_CELL - 3)}...` : text;
}

/** Columns aligned on the widest cell, two spaces apart, no trailing blanks. */
export function formatTable(header: string[], rows: unknown[][]): string {
  const cells = rows.map((row) => row.map((v) => clip(cell(v))));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)));
  return [header, ...cells]
    .map((row) =>
      row
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}

/** `key:  value` lines with the values aligned. */
export function formatFields(fields: [string, unknown][]): string {
  const width = Math.max(...fields.map(([k]) => k.length)) + 1;
  return fields.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${cell(v)}\n`).join('');
}

export function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** What stops a route from being in the kernel, or null when nothing does. */
export function syncProblem(route: Route): string | null {
  const { sync } = route;
  if (sync.state === 'failed') {
    const retry = sync.retry_at ? `; retried at ${cell(sync.retry_at)}` : '';
    return `apply failed on ${route.host}: ${cell(sync.error)}${retry}`;
  }
  if (sync.state === 'conflict') {
    const c = sync.conflict;
    if (c?.reason === 'lockout') {
      return `refused: it would capture ${route.host}'s management address ${cell(c.management_address)} (add --force to apply it anyway)`;
    }
    return `conflict: ${route.host} already has a route to ${route.to} that routeplane does not own`;
  }
  return null;
}

export const ROUTE_COLUMNS = [
  'ID',
  'HOST',
  'TO',
  'VIA',
  'DEV',
  'METRIC',
  'TABLE',
  'STATUS',
  'SYNC',
  'DELETE_AT',
];

/** The gateway column: the one in use for a candidate route (marked), else its via. */
function gatewayCell(r: Route): unknown {
  if (r.active_via === undefined) return r.via;
  const active = Array.isArray(r.active_via) ? r.active_via.join(',') : r.active_via;
  return `${active} (${r.degraded ? 'degraded, ' : ''}of ${(r.via as string[]).length})`;
}

export function routeRow(r: Route): unknown[] {
  return [
    r.id,
    r.host,
    r.to,
    gatewayCell(r),
    r.dev,
    r.metric,
    r.table,
    r.status,
    r.sync.state,
    r.delete_at,
  ];
}

export const REMOVED_ROUTE_COLUMNS = [
  'ID',
  'HOST',
  'TO',
  'VIA',
  'DEV',
  'METRIC',
  'TABLE',
  'STATUS',
  'REMOVED_AT',
  'REMOVED_BY',
];

export function removedRouteRow(r: Route): unknown[] {
  return [
    r.id,
    r.host,
    r.to,
    gatewayCell(r),
    r.dev,
    r.metric,
    r.table,
    r.status,
    r.removed_at,
    r.removed_by,
  ];
}

/** A candidate route's gateways: each with its health, the policy, and the last switch. */
function candidateFields(r: Route): [string, unknown][] {
  const list = (v: string | string[]) => (Array.isArray(v) ? v.join(', ') : v);
  const fields: [string, unknown][] = (r.candidates ?? []).map((c, i) => [
    i === 0 ? 'candidates' : '',
    `${c.via} ${c.health} since ${c.since}${c.active ? ' (in use)' : ''}`,
  ]);
  const checks = (r.health_check ?? [])
    .map(
      (c) =>
        `${c.type}${c.port ? `:${c.port}` : ''} every ${c.interval_s}s, timeout ${c.timeout_s}s, rise ${c.rise}, fall ${c.fall}`,
    )
    .join('; ');
  fields.push(
    ['active_via', r.active_via === undefined ? null : list(r.active_via)],
    ['mode', r.mode],
    ['checks', checks],
    ['preempt', r.preempt],
    ['hold_down_s', r.hold_down_s],
    ['degraded', r.degraded],
  );
  const s = r.last_switch;
  if (s) fields.push(['last_switch', `${s.at}: ${list(s.from)} -> ${list(s.to)} (${s.reason})`]);
  return fields;
}

export function formatRoute(r: Route): string {
  const fields: [string, unknown][] = [
    ['id', r.id],
    ['host', r.host],
    ['to', r.to],
    ...(r.candidates ? candidateFields(r) : [['via', r.via] as [string, unknown]]),
    ['dev', r.dev],
    ['metric', r.metric],
    ['table', r.table],
  ];
  if (r.scope) fields.push(['scope', r.scope]);
  if (r.src) fields.push(['src', r.src]);
  if (r.onlink) fields.push(['onlink', r.onlink]);
  if (r.force) fields.push(['force', r.force]);
  // The openings as --allow takes them, one per word (each may hold commas).
  if (r.allow?.length) fields.push(['allow', r.allow.map(formatAllowSpec).join(' ')]);
  fields.push(
    ['status', r.status],
    ['sync', r.sync.state],
    ['synced_at', r.sync.synced_at],
    ['run', r.sync.run_id],
  );
  const problem = syncProblem(r);
  if (problem) fields.push(['sync_problem', problem]);
  fields.push(
    ['create_at', r.create_at],
    ['delete_at', r.delete_at],
    ['comment', r.comment],
    ['created_by', r.created_by],
    ['created_at', r.created_at],
    ['updated_at', r.updated_at],
  );
  if (r.removed_at) {
    fields.push(
      ['removed_at', r.removed_at],
      ['removed_reason', r.removed_reason],
      ['removed_by', r.removed_by],
    );
  }
  return formatFields(fields);
}

/** A NAT target as `--to` takes it: `address`, `address:port`, `[v6-address]:port`. */
export function formatTarget(to: FirewallRule['to']): string {
  if (!to) return '';
  if (to.port === undefined) return to.address;
  return to.address.includes(':') ? `[${to.address}]:${to.port}` : `${to.address}:${to.port}`;
}

/** What a rule matches besides chain and protocol, as the options that set it; '' for anything. */
export function ruleMatch(r: FirewallRule): string {
  const parts: string[] = [];
  for (const key of ['src', 'dst', 'sport', 'dport'] as const) {
    if (r[key].length > 0) parts.push(`${key}=${r[key].join(',')}`);
  }
  if (r.iif) parts.push(`iif=${r.iif}`);
  if (r.oif) parts.push(`oif=${r.oif}`);
  return parts.join(' ');
}

/** The action, with its NAT target when it has one: `dnat to 127.0.0.1:8080`. */
export function ruleAction(r: FirewallRule): string {
  return r.to ? `${r.action} to ${formatTarget(r.to)}` : r.action;
}

/** One line naming a rule: `input tcp dport=443 accept on h1`. */
export function ruleSummary(r: FirewallRule): string {
  const match = ruleMatch(r);
  return cell(`${r.chain} ${r.protocol}${match ? ` ${match}` : ''} ${ruleAction(r)} on ${r.host}`);
}

/** What stops a rule from being on its host, or null when nothing does. */
export function ruleSyncProblem(rule: FirewallRule): string | null {
  const { sync } = rule;
  if (sync.state === 'failed') {
    const retry = sync.retry_at ? `; retried at ${cell(sync.retry_at)}` : '';
    return `apply failed on ${rule.host}: ${cell(sync.error)}${retry}`;
  }
  if (sync.state === 'conflict') return `conflict on ${rule.host}: ${cell(sync.error)}`;
  return null;
}

export const FIREWALL_RULE_COLUMNS = [
  'ID',
  'HOST',
  'CHAIN',
  'FAMILY',
  'PROTOCOL',
  'MATCH',
  'ACTION',
  'PRIORITY',
  'STATUS',
  'SYNC',
];

export function firewallRuleRow(r: FirewallRule): unknown[] {
  return [
    r.id,
    r.host,
    r.chain,
    r.family,
    r.protocol,
    ruleMatch(r),
    ruleAction(r),
    r.priority,
    r.status,
    r.sync.state,
  ];
}

export function formatFirewallRule(r: FirewallRule): string {
  const fields: [string, unknown][] = [
    ['id', r.id],
    ['host', r.host],
    ['chain', r.chain],
    ['family', r.family],
    ['protocol', r.protocol],
    ['src', r.src],
    ['dst', r.dst],
    ['sport', r.sport],
    ['dport', r.dport],
    ['iif', r.iif],
    ['oif', r.oif],
    ['action', r.action],
  ];
  if (r.to) fields.push(['to', formatTarget(r.to)]);
  if (r.route_id) fields.push(['route', r.route_id]);
  fields.push(
    ['priority', r.priority],
    ['status', r.status],
    ['sync', r.sync.state],
    ['synced_at', r.sync.synced_at],
    ['run', r.sync.run_id],
  );
  const problem = ruleSyncProblem(r);
  if (problem) fields.push(['sync_problem', problem]);
  fields.push(
    ['create_at', r.create_at],
    ['delete_at', r.delete_at],
    ['comment', r.comment],
    ['created_by', r.created_by],
    ['created_at', r.created_at],
    ['updated_at', r.updated_at],
  );
  if (r.removed_at) {
    fields.push(
      ['removed_at', r.removed_at],
      ['removed_reason', r.removed_reason],
      ['removed_by', r.removed_by],
    );
  }
  return formatFields(fields);
}

export const FIREWALL_EVENT_COLUMNS = ['AT', 'ACTOR', 'ACTION', 'FROM', 'TO', 'DETAIL'];

export function firewallEventRow(e: FirewallRuleEvent): unknown[] {
  const detail = e.detail && Object.keys(e.detail).length > 0 ? e.detail : null;
  return [e.at, e.actor, e.action, e.from, e.to, detail];
}

export const FIREWALL_SET_COLUMNS = ['ID', 'NAME', 'HOST', 'TYPE', 'SIZE', 'ELEMENTS', 'COMMENT'];

export function firewallSetRow(s: FirewallSet): unknown[] {
  return [s.id, s.name, s.host, s.type, s.elements.length, s.elements, s.comment];
}

/** A set's fields, then its elements one per line (a table's long cell would clip them). */
export function formatFirewallSet(s: FirewallSet): string {
  const fields: [string, unknown][] = [
    ['id', s.id],
    ['name', s.name],
    ['host', s.host],
    ['type', s.type],
    ['size', s.elements.length],
    ['comment', s.comment],
    ['created_by', s.created_by],
    ['created_at', s.created_at],
    ['updated_at', s.updated_at],
  ];
  if (s.deleted_at) fields.push(['deleted_at', s.deleted_at], ['deleted_by', s.deleted_by]);
  const text = formatFields(fields);
  if (s.elements.length === 0) return text;
  return `${text}\n${formatTable(
    ['ELEMENT'],
    s.elements.map((e) => [e]),
  )}`;
}

export const SET_APPLY_COLUMNS = ['HOST', 'STATE', 'ERROR', 'RUN'];

export function setApplyRow(h: FirewallSetApplyHost): unknown[] {
  return [h.host, h.state, h.error, h.run_id];
}

export const FIREWALL_SET_EVENT_COLUMNS = ['AT', 'ACTOR', 'ACTION', 'ELEMENTS'];

export function firewallSetEventRow(e: FirewallSetEvent): unknown[] {
  return [e.at, e.actor, e.action, e.elements];
}
