import { InvalidArgumentError, Option, type Command } from 'commander';
import { ALLOW_SYNTAX, collectAllow, formatAllowSpec } from './allow-spec.ts';
import {
  ApiError,
  isBatch,
  type Route,
  type RouteBatchResult,
  type RouteCreate,
  type RouteOpening,
  type Written,
} from './api-client.ts';
import type { HealthCheck } from './api-client.ts';
import { addApiOptions, intOption, runApi, show, type ApiContext } from './api-command.ts';
import {
  formatJson,
  formatRoute,
  formatTable,
  REMOVED_ROUTE_COLUMNS,
  removedRouteRow,
  ROUTE_COLUMNS,
  routeRow,
  syncProblem,
} from './output.ts';

const U32 = 4294967295;
const LIVE_STATUSES = ['pending', 'active', 'paused'] as const;
const REMOVED_STATUSES = ['expired', 'deleted'] as const;
const SYNC_STATES = ['in_sync', 'applying', 'failed', 'conflict'] as const;

/** A check as given: the server fills in what the options leave out. */
type CheckInput = Pick<HealthCheck, 'type' | 'port'> & Partial<HealthCheck>;

interface AddOptions {
  via?: string[];
  check?: CheckInput[];
  interval?: number;
  timeout?: number;
  rise?: number;
  fall?: number;
  ecmp?: boolean;
  preempt?: boolean;
  holdDown?: number;
  dev?: string;
  metric?: number;
  table?: number;
  scope?: RouteCreate['scope'];
  src?: string;
  onlink?: boolean;
  force?: boolean;
  createAt?: string;
  deleteAt?: string;
  comment?: string;
  wait?: number;
  replace?: boolean;
  allow?: RouteOpening[];
}

interface ListOptions {
  host?: string;
  status?: (typeof LIVE_STATUSES)[number] | (typeof REMOVED_STATUSES)[number];
  sync?: (typeof SYNC_STATES)[number];
  contains?: string;
  within?: string;
  limit?: number;
  offset?: number;
}

const waitOption = () =>
  new Option('--wait <seconds>', 'wait this long for the apply run (server default: 30)').argParser(
    intOption(0, 600),
  );

/** The body of `add`: only what was given, so the server's defaults apply to the rest. */
function createBody(host: string, to: string, o: AddOptions): RouteCreate {
  // onlink and force have defaults in the contract, which makes them required in its types.
  const body: RouteCreate = { host, to, onlink: o.onlink === true, force: o.force === true };
  // One --via is one gateway; several are candidates, health-checked in their order.
  if (o.via !== undefined) body.via = o.via.length === 1 ? o.via[0]! : o.via;
  const failover = failoverBody(o);
  if (failover) Object.assign(body, failover);
  if (o.dev !== undefined) body.dev = o.dev;
  if (o.metric !== undefined) body.metric = o.metric;
  if (o.table !== undefined) body.table = o.table;
  if (o.scope !== undefined) body.scope = o.scope;
  if (o.src !== undefined) body.src = o.src;
  if (o.createAt !== undefined) body.create_at = o.createAt;
  if (o.deleteAt !== undefined) body.delete_at = o.deleteAt;
  if (o.comment !== undefined) body.comment = o.comment;
  if (o.allow !== undefined) body.allow = o.allow;
  return body;
}

/** `--check icmp` or `--check tcp:PORT`, repeatable. */
function collectCheck(value: string, previous: CheckInput[] = []): CheckInput[] {
  if (value === 'icmp') return [...previous, { type: 'icmp' }];
  const m = /^tcp:(\d{1,5})$/.exec(value);
  const port = m ? Number(m[1]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new InvalidArgumentError('expected icmp or tcp:PORT (1-65535)');
  }
  return [...previous, { type: 'tcp', port }];
}

const collectVia = (value: string, previous: string[] = []) => [...previous, value];

const secondsOption = (min: number, max: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new InvalidArgumentError(`expected a number of seconds from ${min} to ${max}`);
  }
  return n;
};

/** The failover fields of `add`, only those given; null when there is nothing to say. */
function failoverBody(o: AddOptions): Partial<RouteCreate> | null {
  const timing = {
    ...(o.interval !== undefined ? { interval_s: o.interval } : {}),
    ...(o.timeout !== undefined ? { timeout_s: o.timeout } : {}),
    ...(o.rise !== undefined ? { rise: o.rise } : {}),
    ...(o.fall !== undefined ? { fall: o.fall } : {}),
  };
  const out: Partial<RouteCreate> = {};
  const checks = o.check ?? (Object.keys(timing).length > 0 ? [{ type: 'icmp' as const }] : []);
  if (checks.length > 0) {
    out.health_check = checks.map((c) => ({ ...c, ...timing })) as HealthCheck[];
  }
  if (o.ecmp) out.mode = 'ecmp';
  if (o.preempt) out.preempt = true;
  if (o.holdDown !== undefined) out.hold_down_s = o.holdDown;
  return Object.keys(out).length > 0 ? out : null;
}

/**
 * The API names an opening by its index and field (`/body/allow/1/dport`, or `/body/0/allow/1`
 * in a batch); the person typed `--allow SPEC`, so the error names that, with the spec.
 */
function relabelAllow(err: unknown, allow: readonly RouteOpening[] | undefined): unknown {
  if (!(err instanceof ApiError)) return err;
  const named = (i: string | undefined) => {
    const opening = i === undefined ? undefined : allow?.[Number(i)];
    return opening ? `--allow '${formatAllowSpec(opening)}'` : '--allow';
  };
  // An opening refused whole (a 409: it would cut management) is named in the detail.
  const detail = err.detail.replace(
    /^\/body(?:\/\d+)?\/allow\/(\d+): /,
    (_, i: string) => `${named(i)}: `,
  );
  const p = err.problem;
  if (!p?.errors?.length) {
    return detail === err.detail ? err : new ApiError(err.status, detail, p ? { ...p, detail } : p);
  }
  let changed = detail !== err.detail;
  const errors = p.errors.map((e) => {
    const m = /^\/body(?:\/\d+)?\/allow(?:\/(\d+)(?:\/[A-Za-z_]+(?:\/\d+)?)?)?$/.exec(e.field);
    if (!m) return e;
    changed = true;
    const opening = m[1] === undefined ? undefined : allow?.[Number(m[1])];
    return {
      field: '/body/allow',
      message: opening ? `'${formatAllowSpec(opening)}': ${e.message}` : e.message,
    };
  });
  return changed ? new ApiError(err.status, detail, { ...p, detail, errors }) : err;
}

function stillApplying(ctx: ApiContext<unknown>, route: Route, runId: string | null): void {
  ctx.note(
    `route ${route.id} is recorded; the run applying it${runId ? ` (${runId})` : ''} is still ` +
      `going: see 'routeplane routes show ${route.id}'`,
  );
}

/** A write that left the route out of the kernel is a failure for whoever scripts it. */
function failOnSyncProblem(ctx: ApiContext<unknown>, route: Route): void {
  const problem = syncProblem(route);
  if (problem) ctx.fail(`route ${route.id}: ${problem}`);
}

function reportAdd(ctx: ApiContext<AddOptions>, res: Written<Route | RouteBatchResult>): void {
  const answer = res.body;
  if (isBatch(answer)) {
    show(ctx, answer, (b) =>
      formatTable(
        ['OUTCOME', ...ROUTE_COLUMNS],
        b.items.map((i) => [i.outcome, ...routeRow(i.route)]),
      ),
    );
    if (res.status === 202) ctx.note('the run applying these routes is still going');
    for (const { route } of answer.items) failOnSyncProblem(ctx, route);
    return;
  }
  if (res.status === 200) {
    ctx.note(
      ctx.opts.replace
        ? `route ${answer.id} already existed; it now has this forwarding`
        : `route ${answer.id} already exists; nothing changed`,
    );
  }
  if (res.status === 202) stillApplying(ctx, answer, answer.sync.run_id);
  show(ctx, answer, formatRoute);
  failOnSyncProblem(ctx, answer);
}

/** `del`, `pause` and `resume`: one line saying what happened, or the route as JSON. */
function reportChange(ctx: ApiContext<unknown>, verb: string, res: Written<Route>): void {
  const r = res.body;
  show(
    ctx,
    r,
    () => `${verb} route ${r.id} (${r.to} on ${r.host}): ${r.status}, ${r.sync.state}\n`,
  );
  if (res.status === 202) stillApplying(ctx, r, r.sync.run_id);
  else if (r.status === 'active') failOnSyncProblem(ctx, r);
}

export function registerRoutesCommand(program: Command): void {
  const routes = program
    .command('routes')
    .description('network routes declared per host, applied to the kernels by routeplane');

  addApiOptions(
    routes
      .command('add')
      .description('declare a route; adding an identical route again prints the existing one')
      .argument('<host>', 'inventory host, or a group (one route per member)')
      .argument('<to>', 'destination prefix; a bare address means /32 or /128')
      .option(
        '--via <gateway>',
        'gateway, in the family of <to>; repeat for candidate gateways, used in order by health',
        collectVia,
      )
      .option(
        '--check <icmp|tcp:PORT>',
        'health check of each candidate gateway (default icmp); repeat: all must pass',
        collectCheck,
      )
      .option(
        '--interval <seconds>',
        'seconds between checks (default 2)',
        secondsOption(0.5, 3600),
      )
      .option('--timeout <seconds>', 'seconds a check may take (default 1)', secondsOption(0.1, 60))
      .option(
        '--rise <n>',
        'passes in a row that make a gateway healthy (default 2)',
        intOption(1, 20),
      )
      .option(
        '--fall <n>',
        'failures in a row that make it unhealthy (default 2)',
        intOption(1, 20),
      )
      .option('--ecmp', 'use every healthy candidate at once (one multipath route)')
      .option('--preempt', 'return to a recovered earlier candidate (after --hold-down)')
      .option(
        '--hold-down <seconds>',
        'at most one return or ecmp rejoin per this many seconds (default 10)',
        intOption(0, 86400),
      )
      .option('--dev <ifname>', 'output device (at least one of --via and --dev)')
      .option('--metric <n>', 'metric (default 0 for IPv4, 1024 for IPv6)', intOption(0, U32))
      .option('--table <n>', 'routing table id (default 254, main)', intOption(1, U32))
      .addOption(
        new Option('--scope <scope>', 'route scope').choices(['global', 'site', 'link', 'host']),
      )
      .option('--src <address>', 'preferred source address')
      .option('--onlink', 'pretend the gateway is directly attached')
      .option('--force', "apply even if it captures the host's management address")
      .option('--create-at <iso>', 'activate at this time (ISO 8601, e.g. 2026-11-24T09:00:00Z)')
      .option('--delete-at <iso>', 'expire at this time (ISO 8601)')
      .option('--comment <text>', 'free text shown with the route')
      .option('--replace', 'move an existing route with the same identity to this gateway/device')
      .option(
        `--allow <${ALLOW_SYNTAX}>`,
        'open forwarding to <to> on the host: PROTOCOL tcp, udp, icmp, icmpv6 or any; PORTS ' +
          'and SOURCES comma-separated (tcp:443, tcp:8000-8080,9000, udp:53/from=10.0.0.0/8); repeat',
        collectAllow,
      )
      .addOption(waitOption()),
  ).action(function (this: Command, host: string, to: string) {
    return runApi<AddOptions>(
      this,
      async (ctx) => {
        const { wait, replace } = ctx.opts;
        try {
          const body = createBody(host, to, ctx.opts);
          reportAdd(ctx, await ctx.client.createRoute(body, { wait, replace }));
        } catch (err) {
          throw relabelAllow(err, ctx.opts.allow);
        }
      },
      {
        positionals: ['host', 'to'],
        hint: (err) =>
          err instanceof ApiError && err.status === 409 && err.problem?.route_id
            ? 'add --replace to move it to the new gateway or device'
            : null,
      },
    );
  });

  addApiOptions(
    routes
      .command('show')
      .description('one route, live or removed; exit 1 if there is no such route')
      .argument('<id>', 'route id'),
  ).action(function (this: Command, id: string) {
    return runApi(this, async (ctx) => show(ctx, await ctx.client.getRoute(id), formatRoute), {
      positionals: ['id'],
    });
  });

  addApiOptions(
    routes
      .command('del')
      .alias('delete')
      .description('delete a route (removed from the kernel, kept in history); exit 1 if absent')
      .argument('<id>', 'route id')
      .addOption(waitOption()),
  ).action(function (this: Command, id: string) {
    return runApi<{ wait?: number }>(
      this,
      async (ctx) => reportChange(ctx, 'deleted', await ctx.client.deleteRoute(id, ctx.opts.wait)),
      { positionals: ['id'] },
    );
  });

  addApiOptions(
    routes
      .command('pause')
      .description('take an active route out of the kernel, keeping it declared')
      .argument('<id>', 'route id')
      .addOption(waitOption()),
  ).action(function (this: Command, id: string) {
    return runApi<{ wait?: number }>(
      this,
      async (ctx) => reportChange(ctx, 'paused', await ctx.client.pauseRoute(id, ctx.opts.wait)),
      { positionals: ['id'] },
    );
  });

  addApiOptions(
    routes
      .command('resume')
      .description('put a paused route back into the kernel')
      .argument('<id>', 'route id')
      .addOption(waitOption()),
  ).action(function (this: Command, id: string) {
    return runApi<{ wait?: number }>(
      this,
      async (ctx) => reportChange(ctx, 'resumed', await ctx.client.resumeRoute(id, ctx.opts.wait)),
      { positionals: ['id'] },
    );
  });

  addApiOptions(
    routes
      .command('list')
      .alias('ls')
      .description('live routes; --status expired or deleted lists the history instead')
      .option('--host <host>', 'only routes of this host')
      .addOption(
        new Option('--status <status>', 'only routes in this state').choices([
          ...LIVE_STATUSES,
          ...REMOVED_STATUSES,
        ]),
      )
      .addOption(
        new Option('--sync <state>', 'only live routes in this sync state').choices(SYNC_STATES),
      )
      .option('--contains <address>', 'only routes whose destination contains this address')
      .option('--within <prefix>', 'only routes whose destination lies within this prefix')
      .option('--limit <n>', 'page size (server default 100)', intOption(1, 1000))
      .option('--offset <n>', 'skip this many routes', intOption(0, 10_000_000)),
  ).action(function (this: Command) {
    return runApi<ListOptions>(this, async (ctx) => {
      const { status, sync, ...rest } = ctx.opts;
      const removed = status === 'expired' || status === 'deleted';
      if (removed && sync) {
        ctx.fail('--sync applies to live routes; expired and deleted ones are in no kernel');
        return;
      }
      const query = {
        host: rest.host,
        contains: rest.contains,
        within: rest.within,
        limit: rest.limit,
        offset: rest.offset,
      };
      const page = removed
        ? await ctx.client.listRouteHistory({ ...query, status })
        : await ctx.client.listRoutes({ ...query, status, sync });
      if (ctx.json) return ctx.out(formatJson(page));
      if (page.items.length === 0) return ctx.note('no routes');
      ctx.out(
        removed
          ? formatTable(REMOVED_ROUTE_COLUMNS, page.items.map(removedRouteRow))
          : formatTable(ROUTE_COLUMNS, page.items.map(routeRow)),
      );
      const shown = page.offset + page.items.length;
      if (shown < page.total) {
        ctx.note(`showing ${page.offset + 1}-${shown} of ${page.total}; use --offset ${shown}`);
      }
    });
  });
}
