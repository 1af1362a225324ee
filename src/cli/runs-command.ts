import { Option, type Command } from 'commander';
import type { ListRunsQuery, PlaybookList, Run, RunList } from './api-client.ts';
import { addApiOptions, intOption, runApi, show } from './api-command.ts';
import { formatFields, formatTable } from './output.ts';
import { RUN_STATUSES, type RunKind } from '../runs/types.ts';

const RUN_KINDS: readonly RunKind[] = ['playbook', 'gather', 'apply'];

function formatRuns(list: RunList): string {
  return formatTable(
    ['ID', 'KIND', 'PLAYBOOK', 'STATUS', 'RC', 'HOSTS', 'BY', 'CREATED_AT', 'FINISHED_AT'],
    list.items.map((r) => [
      r.id,
      r.kind,
      r.playbook,
      r.status,
      r.rc,
      r.hosts,
      r.requested_by,
      r.created_at,
      r.finished_at,
    ]),
  );
}

function formatRun(r: Run, withLog: boolean): string {
  const parts = [
    formatFields([
      ['id', r.id],
      ['kind', r.kind],
      ['playbook', r.playbook],
      ['status', r.status],
      ['rc', r.rc],
      ['hosts', r.hosts],
      ['limit', r.limit],
      ['requested_by', r.requested_by],
      ['created_at', r.created_at],
      ['started_at', r.started_at],
      ['finished_at', r.finished_at],
      ['error', r.error],
    ]),
    formatTable(
      ['HOST', 'STATUS', 'OK', 'CHANGED', 'FAILURES', 'UNREACHABLE', 'SKIPPED', 'MSG'],
      Object.entries(r.summary).map(([host, o]) => [
        host,
        o.status,
        o.ok,
        o.changed,
        o.failures,
        o.unreachable,
        o.skipped,
        o.msg,
      ]),
    ),
  ];
  if (withLog && r.log) parts.push(r.log.endsWith('\n') ? r.log : `${r.log}\n`);
  return parts.join('\n');
}

function formatPlaybooks(list: PlaybookList): string {
  return formatTable(
    ['PLAYBOOK', 'VARIABLE', 'TYPE', 'REQUIRED', 'DEFAULT', 'DESCRIPTION'],
    list.items.flatMap((p) =>
      p.error
        ? [[p.name, null, null, null, null, `invalid sidecar: ${p.error}`]]
        : p.vars.length === 0
          ? [[p.name, null, null, null, null, 'accepts no extra variables']]
          : p.vars.map((v) => [
              p.name,
              v.name,
              v.type,
              v.required,
              'default' in v ? JSON.stringify(v.default) : null,
              v.description ?? null,
            ]),
    ),
  );
}

export function registerRunsCommand(program: Command): void {
  const runs = program
    .command('runs')
    .description('ansible-playbook runs and their per-host results');

  addApiOptions(
    runs
      .command('list')
      .alias('ls')
      .description('runs, newest first')
      .addOption(new Option('--status <status>', 'only runs in this state').choices(RUN_STATUSES))
      .addOption(new Option('--kind <kind>', 'only runs of this kind').choices(RUN_KINDS))
      .option('--host <host>', 'only runs that targeted this host')
      .option('--limit <n>', 'page size (server default 50)', intOption(1, 200))
      .option('--offset <n>', 'skip this many runs', intOption(0, 1_000_000)),
  ).action(function (this: Command) {
    return runApi<ListRunsQuery>(this, async (ctx) => {
      const { status, kind, host, limit, offset } = ctx.opts;
      const page = await ctx.client.listRuns({ status, kind, host, limit, offset });
      if (!ctx.json && page.items.length === 0) return ctx.note('no runs');
      show(ctx, page, formatRuns);
    });
  });

  addApiOptions(
    runs
      .command('playbooks')
      .description('the catalog: playbooks a run may name, and the variables each accepts'),
  ).action(function (this: Command) {
    return runApi(this, async (ctx) =>
      show(ctx, await ctx.client.listPlaybooks(), formatPlaybooks),
    );
  });

  addApiOptions(
    runs
      .command('show')
      .description('one run with its per-host outcome')
      .argument('<id>', 'run id')
      .option('--log', "also print ansible-playbook's stderr log"),
  ).action(function (this: Command, id: string) {
    return runApi<{ log?: boolean }>(
      this,
      async (ctx) =>
        show(ctx, await ctx.client.getRun(id), (r) => formatRun(r, ctx.opts.log === true)),
      { positionals: ['id'] },
    );
  });
}
