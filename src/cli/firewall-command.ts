import { Argument, InvalidArgumentError, Option, type Command } from 'commander';
import {
  ApiError,
  isFirewallBatch,
  type FirewallRule,
  type FirewallRuleBatchResult,
  type FirewallRuleCreate,
  type Written,
} from './api-client.ts';
import {
  addApiOptions,
  fieldLabel,
  intOption,
  runApi,
  show,
  type ApiContext,
} from './api-command.ts';
import {
  FIREWALL_EVENT_COLUMNS,
  FIREWALL_RULE_COLUMNS,
  firewallEventRow,
  firewallRuleRow,
  formatFirewallRule,
  formatJson,
  formatTable,
  ruleSummary,
  ruleSyncProblem,
} from './output.ts';

const CHAINS = ['input', 'forward', 'output', 'prerouting', 'postrouting'] as const;
const ACTIONS = ['accept', 'drop', 'reject', 'dnat', 'snat', 'masquerade'] as const;
const LIVE_STATUSES = ['pending', 'active', 'paused'] as const;
const LIST_FIELDS = ['src', 'dst', 'sport', 'dport'] as const;

type ListField = (typeof LIST_FIELDS)[number];

interface AddOptions {
  family?: FirewallRuleCreate['family'];
  protocol?: FirewallRuleCreate['protocol'];
  src?: string[];
  dst?: string[];
  sport?: string[];
  dport?: string[];
  iif?: string;
  oif?: string;
  to?: NonNullable<FirewallRuleCreate['to']>;
  priority?: number;
  comment?: string;
  createAt?: string;
  deleteAt?: string;
  wait?: number;
}

interface ListOptions {
  host?: string;
  route?: string;
  status?: (typeof LIVE_STATUSES)[number];
  limit?: number;
  offset?: number;
}

const waitOption = () =>
  new Option('--wait <seconds>', 'wait this long for the apply run (server default: 30)').argParser(
    intOption(0, 600),
  );

/** `--src a,b --src c`: each use adds its comma-separated values. */
function listOption(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean),
  ];
}

/** `--to`: `address`, `address:port`, or `[v6-address]:port` (a bare IPv6 address has no port). */
export function parseTarget(value: string): NonNullable<FirewallRuleCreate['to']> {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  const v4Port = /^([^:]+):(\d+)$/.exec(value);
  const m = bracketed ?? v4Port;
  const address = m ? m[1]! : value;
  if (!address || value.startsWith('[') !== Boolean(bracketed)) {
    throw new InvalidArgumentError('expected address, address:port or [v6-address]:port');
  }
  if (m?.[2] === undefined) return { address };
  const port = Number(m[2]);
  if (!(port >= 1 && port <= 65535)) throw new InvalidArgumentError('port must be 1 to 65535');
  return { address, port };
}

/** The body of `add`: only what was given, so the server's defaults apply to the rest. */
function createBody(
  host: string,
  chain: FirewallRuleCreate['chain'],
  action: FirewallRuleCreate['action'],
  o: AddOptions,
): FirewallRuleCreate {
  const body: FirewallRuleCreate = { host, chain, action };
  if (o.family !== undefined) body.family = o.family;
  if (o.protocol !== undefined) body.protocol = o.protocol;
  for (const key of LIST_FIELDS) {
    const values = o[key];
    if (values !== undefined && values.length > 0) body[key] = values;
  }
  if (o.iif !== undefined) body.iif = o.iif;
  if (o.oif !== undefined) body.oif = o.oif;
  if (o.to !== undefined) body.to = o.to;
  if (o.priority !== undefined) body.priority = o.priority;
  if (o.comment !== undefined) body.comment = o.comment;
  if (o.createAt !== undefined) body.create_at = o.createAt;
  if (o.deleteAt !== undefined) body.delete_at = o.deleteAt;
  return body;
}

/**
 * The API names an item of a list (`/body/src/1`) and a part of the target (`/body/to/port`);
 * the person typed `--src` and `--to`, so the error names those, with the value when it helps.
 */
function relabel(err: unknown, body?: FirewallRuleCreate): unknown {
  if (!(err instanceof ApiError)) return err;
  const p = err.problem;
  // A problem without a field list may name the field in its detail: `/path/host: ...`.
  // A refusal of the whole rule (`/body: refused on h1: ...`) needs no field at all.
  const detail = err.detail
    .replace(/^\/body: /, '')
    .replace(
      /^(\/(?:body|path)\/[A-Za-z_]+): /,
      (_, field: string) => `${fieldLabel(field, ['host', 'chain', 'action'])}: `,
    );
  if (!p?.errors?.length) {
    return detail === err.detail ? err : new ApiError(err.status, detail, p ? { ...p, detail } : p);
  }
  const errors = p.errors.map((e) => {
    const item = /^\/body\/(src|dst|sport|dport)\/(\d+)$/.exec(e.field);
    if (item) {
      const value = body?.[item[1] as ListField]?.[Number(item[2])];
      const quoted = value !== undefined && !e.message.includes(value) ? `'${value}': ` : '';
      return { field: `/body/${item[1]}`, message: `${quoted}${e.message}` };
    }
    if (/^\/body\/to\/(address|port)$/.test(e.field)) return { ...e, field: '/body/to' };
    // `list --route` sends the route's id as route_id.
    if (e.field === '/query/route_id') return { ...e, field: '/query/route' };
    return e;
  });
  return new ApiError(err.status, detail, { ...p, detail, errors });
}

function stillApplying(ctx: ApiContext<unknown>, rule: FirewallRule, runId: string | null): void {
  ctx.note(
    `rule ${rule.id} is recorded; the run applying it${runId ? ` (${runId})` : ''} is still ` +
      `going: see 'routeplane firewall show ${rule.id}'`,
  );
}

/** A write that left the rule off its host is a failure for whoever scripts it. */
function failOnSyncProblem(ctx: ApiContext<unknown>, rule: FirewallRule): void {
  const problem = ruleSyncProblem(rule);
  if (problem) ctx.fail(`rule ${rule.id}: ${problem}`);
}

/** A 502 names the rule that was recorded and whose apply the server retries. */
function applyFailedHint(err: unknown): string | null {
  if (!(err instanceof ApiError) || err.status !== 502) return null;
  const p = err.problem;
  if (!p || typeof p.rule_id !== 'string') return null;
  return (
    `rule ${p.rule_id} is recorded on ${p.host ?? '?'} and its apply is retried` +
    (p.run_id ? ` (run ${p.run_id})` : '')
  );
}

function reportAdd(
  ctx: ApiContext<AddOptions>,
  res: Written<FirewallRule | FirewallRuleBatchResult>,
): void {
  const answer = res.body;
  if (isFirewallBatch(answer)) {
    show(ctx, answer, (b) =>
      formatTable(
        ['OUTCOME', ...FIREWALL_RULE_COLUMNS],
        b.items.map((i) => [i.outcome, ...firewallRuleRow(i.rule)]),
      ),
    );
    if (res.status === 202) ctx.note('the run applying these rules is still going');
    for (const { rule } of answer.items) failOnSyncProblem(ctx, rule);
    return;
  }
  if (res.status === 200) ctx.note(`rule ${answer.id} already exists; nothing changed`);
  if (res.status === 202) stillApplying(ctx, answer, answer.sync.run_id);
  show(ctx, answer, formatFirewallRule);
  failOnSyncProblem(ctx, answer);
}

/** `rm`, `pause` and `resume`: one line saying what happened, or the rule as JSON. */
function reportChange(ctx: ApiContext<unknown>, verb: string, res: Written<FirewallRule>): void {
  const r = res.body;
  show(ctx, r, () => `${verb} rule ${r.id} (${ruleSummary(r)}): ${r.status}, ${r.sync.state}\n`);
  if (res.status === 202) stillApplying(ctx, r, r.sync.run_id);
  else if (r.status === 'active') failOnSyncProblem(ctx, r);
}

/** runApi, with the API's field names turned into the options typed and a 502 explained. */
function runFirewall<O extends object>(
  cmd: Command,
  body: (ctx: ApiContext<O>) => Promise<void>,
  positionals: readonly string[],
  extraHint?: (err: unknown) => string | null,
  request?: (ctx: ApiContext<O>) => FirewallRuleCreate,
): Promise<void> {
  return runApi<O>(
    cmd,
    async (ctx) => {
      try {
        await body(ctx);
      } catch (err) {
        throw relabel(err, request?.(ctx));
      }
    },
    { positionals, hint: (err) => applyFailedHint(err) ?? extraHint?.(err) ?? null },
  );
}

export function registerFirewallCommand(program: Command): void {
  const firewall = program
    .command('firewall')
    .description('firewall rules declared per host (nftables), applied by routeplane');

  addApiOptions(
    firewall
      .command('add')
      .description('declare a rule; adding an identical rule again prints the existing one')
      .argument('<host>', 'inventory host, or a group (a rule per member)')
      .addArgument(new Argument('<chain>', "the chain of routeplane's table").choices(CHAINS))
      .addArgument(new Argument('<action>', 'what a matching packet gets').choices(ACTIONS))
      .addOption(
        new Option('--family <family>', 'ip, ip6 or inet (both; default)').choices([
          'ip',
          'ip6',
          'inet',
        ]),
      )
      .addOption(
        new Option('--protocol <protocol>', 'protocol to match (default any)').choices([
          'tcp',
          'udp',
          'icmp',
          'icmpv6',
          'any',
        ]),
      )
      .option('--src <prefix>', 'source address or prefix; repeat or comma-separate', listOption)
      .option(
        '--dst <prefix>',
        'destination address or prefix; repeat or comma-separate',
        listOption,
      )
      .option('--sport <port>', 'source port or range low-high (needs tcp or udp)', listOption)
      .option('--dport <port>', 'destination port or range low-high (needs tcp or udp)', listOption)
      .option('--iif <ifname>', 'only packets arriving on this interface')
      .option('--oif <ifname>', 'only packets leaving on this interface')
      .option(
        '--to <address[:port]>',
        'NAT target of dnat (address, port optional) and snat; IPv6 with a port as [addr]:port',
        parseTarget,
      )
      .option(
        '--priority <n>',
        'lower renders first; the first match wins (default 100)',
        intOption(0, 1000),
      )
      .option('--comment <text>', 'free text shown with the rule (no quotes or newlines)')
      .option('--create-at <iso>', 'activate at this time (ISO 8601, e.g. 2026-11-24T09:00:00Z)')
      .option('--delete-at <iso>', 'expire at this time (ISO 8601)')
      .addOption(waitOption()),
  ).action(function (
    this: Command,
    host: string,
    chain: FirewallRuleCreate['chain'],
    action: FirewallRuleCreate['action'],
  ) {
    return runFirewall<AddOptions>(
      this,
      async (ctx) => {
        const body = createBody(host, chain, action, ctx.opts);
        reportAdd(ctx, await ctx.client.createFirewallRules(body, ctx.opts.wait));
      },
      ['host', 'chain', 'action'],
      undefined,
      (ctx) => createBody(host, chain, action, ctx.opts),
    );
  });

  addApiOptions(
    firewall
      .command('show')
      .description('one rule, live or removed; exit 1 if there is no such rule')
      .argument('<id>', 'rule id'),
  ).action(function (this: Command, id: string) {
    return runFirewall(
      this,
      async (ctx) => show(ctx, await ctx.client.getFirewallRule(id), formatFirewallRule),
      ['id'],
    );
  });

  addApiOptions(
    firewall
      .command('rm')
      .alias('del')
      .description('delete a rule (removed from the host, kept in history); exit 1 if absent')
      .argument('<id>', 'rule id')
      .addOption(waitOption()),
  ).action(function (this: Command, id: string) {
    return runFirewall<{ wait?: number }>(
      this,
      async (ctx) =>
        reportChange(ctx, 'deleted', await ctx.client.deleteFirewallRule(id, ctx.opts.wait)),
      ['id'],
    );
  });

  addApiOptions(
    firewall
      .command('pause')
      .description('take an active rule off its host, keeping it declared')
      .argument('<id>', 'rule id')
      .addOption(waitOption()),
  ).action(function (this: Command, id: string) {
    return runFirewall<{ wait?: number }>(
      this,
      async (ctx) =>
        reportChange(ctx, 'paused', await ctx.client.pauseFirewallRule(id, ctx.opts.wait)),
      ['id'],
    );
  });

  addApiOptions(
    firewall
      .command('resume')
      .description('put a paused rule back on its host')
      .argument('<id>', 'rule id')
      .addOption(waitOption()),
  ).action(function (this: Command, id: string) {
    return runFirewall<{ wait?: number }>(
      this,
      async (ctx) =>
        reportChange(ctx, 'resumed', await ctx.client.resumeFirewallRule(id, ctx.opts.wait)),
      ['id'],
    );
  });

  addApiOptions(
    firewall
      .command('events')
      .description("a rule's audit trail, oldest first: every transition, who made it and when")
      .argument('<id>', 'rule id'),
  ).action(function (this: Command, id: string) {
    return runFirewall(
      this,
      async (ctx) => {
        const answer = await ctx.client.listFirewallRuleEvents(id);
        show(ctx, answer, (a) =>
          formatTable(FIREWALL_EVENT_COLUMNS, a.items.map(firewallEventRow)),
        );
      },
      ['id'],
    );
  });

  addApiOptions(
    firewall
      .command('release')
      .description("remove routeplane's table from a host without live rules, and nothing else")
      .argument('<host>', 'inventory host')
      .addOption(waitOption()),
  ).action(function (this: Command, host: string) {
    return runFirewall<{ wait?: number }>(
      this,
      async (ctx) => {
        const res = await ctx.client.releaseHostFirewall(host, ctx.opts.wait);
        show(ctx, res.body, (b) => `released ${b.host}: routeplane's table is removed\n`);
        if (res.status === 202) {
          ctx.note(
            `the run removing routeplane's table from ${host} is still going` +
              (res.location ? `: see 'routeplane runs show ${res.location.split('/').pop()}'` : ''),
          );
        }
      },
      ['host'],
      (err) =>
        err instanceof ApiError && err.status === 409 && typeof err.problem?.live_rules === 'number'
          ? `see them with 'routeplane firewall list --host ${host}'`
          : null,
    );
  });

  addApiOptions(
    firewall
      .command('list')
      .alias('ls')
      .description('live rules (pending, active, paused), in the order they render on each host')
      .option('--host <host>', 'only rules of this host')
      .option('--route <id>', 'only the openings of this route (its --allow)')
      .addOption(new Option('--status <status>', 'only rules in this state').choices(LIVE_STATUSES))
      .option('--limit <n>', 'page size (server default 100)', intOption(1, 1000))
      .option('--offset <n>', 'skip this many rules', intOption(0, 10_000_000)),
  ).action(function (this: Command) {
    return runFirewall<ListOptions>(
      this,
      async (ctx) => {
        const { host, route, status, limit, offset } = ctx.opts;
        const page = await ctx.client.listFirewallRules({
          host,
          route_id: route,
          status,
          limit,
          offset,
        });
        if (ctx.json) return ctx.out(formatJson(page));
        if (page.items.length === 0) return ctx.note('no rules');
        ctx.out(formatTable(FIREWALL_RULE_COLUMNS, page.items.map(firewallRuleRow)));
        const shown = page.offset + page.items.length;
        if (shown < page.total) {
          ctx.note(`showing ${page.offset + 1}-${shown} of ${page.total}; use --offset ${shown}`);
        }
      },
      [],
    );
  });
}
