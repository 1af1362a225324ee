import type { Command } from 'commander';
import type { HostDetail, HostList } from './api-client.ts';
import { addApiOptions, runApi, show } from './api-command.ts';
import { formatFields, formatTable } from './output.ts';

function formatHosts(list: HostList): string {
  return formatTable(
    ['NAME', 'GROUPS', 'ADDRESS', 'REACHABLE', 'READ_ONLY', 'LAST_SEEN', 'LAST_ERROR'],
    list.items.map((h) => [
      h.name,
      h.groups,
      h.vars.ansible_host ?? null,
      h.reachable,
      h.read_only,
      h.last_seen_at,
      h.last_error,
    ]),
  );
}

function formatHost(h: HostDetail): string {
  const { state } = h;
  return [
    formatFields([
      ['name', h.name],
      ['groups', h.groups],
      ['address', h.vars.ansible_host ?? null],
      ['local', h.local],
      ['local_reason', h.local_reason],
      ['read_only', h.read_only],
      ['reachable', h.reachable],
      ['last_seen_at', h.last_seen_at],
      ['last_error', h.last_error],
      ['collected_at', state.collected_at],
      ['gather_run', state.run_id],
    ]),
    formatTable(
      ['IFNAME', 'STATE', 'MTU', 'LLADDR'],
      state.links.map((l) => [l.ifname, l.state, l.mtu, l.lladdr]),
    ),
    formatTable(
      ['IFNAME', 'ADDRESS', 'SCOPE'],
      state.addresses.map((a) => [a.ifname, `${a.address}/${a.prefixlen}`, a.scope]),
    ),
    formatTable(
      ['DST', 'GATEWAY', 'DEV', 'PROTO', 'METRIC', 'TABLE', 'SCOPE'],
      state.routes.map((r) => [r.dst, r.gateway, r.dev, r.protocol, r.metric, r.table, r.scope]),
    ),
  ].join('\n');
}

export function registerHostsCommand(program: Command): void {
  const hosts = program.command('hosts').description('the fleet: the hosts of the inventory');

  addApiOptions(
    hosts.command('list').alias('ls').description('every host with its last known reachability'),
  ).action(function (this: Command) {
    return runApi(this, async (ctx) => show(ctx, await ctx.client.listHosts(), formatHosts));
  });

  addApiOptions(
    hosts
      .command('show')
      .description("a host's interfaces, addresses and kernel routes from the last gather")
      .argument('<host>', 'inventory host name')
      .option('--refresh', 'gather the state from the host now'),
  ).action(function (this: Command, name: string) {
    return runApi<{ refresh?: boolean }>(
      this,
      async (ctx) => show(ctx, await ctx.client.getHost(name, ctx.opts.refresh), formatHost),
      { positionals: ['host'] },
    );
  });
}
