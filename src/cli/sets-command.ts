import { Option, type Command } from 'commander';
import {
  ApiError,
  type FirewallSetCreate,
  type FirewallSetWriteResult,
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
  FIREWALL_SET_COLUMNS,
  FIREWALL_SET_EVENT_COLUMNS,
  firewallSetEventRow,
  firewallSetRow,
  formatFirewallSet,
  formatJson,
  formatTable,
  SET_APPLY_COLUMNS,
  setApplyRow,
} from './output.ts';

const SET_TYPES = ['address', 'port'] as const;

interface CreateOptions {
  host: string;
  type: FirewallSetCreate['type'];
  element?: string[];
  comment?: string;
  wait?: number;
}

interface ListOptions {
  host?: string;
  target?: string;
}

const waitOption = () =>
  new Option('--wait <seconds>', 'wait this long for the apply run (server default: 30)').argParser(
    intOption(0, 600),
  );

/** Elements as typed: each argument or option use may also be comma-separated. */
function splitElements(values: readonly string[]): string[] {
  return values.flatMap((v) =>
    v
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean),
  );
}

function elementOption(value: string, previous: string[] = []): string[] {
  return [...previous, ...splitElements([value])];
}

/**
 * The API names an element by its index (`/body/elements/2`, `/query/element/0`); the person
 * typed `--element` or `<element...>`, so the error names that, with the value when it helps.
 */
function relabel(err: unknown, elementLabel: string, elements: readonly string[]): unknown {
  if (!(err instanceof ApiError)) return err;
  const p = err.problem;
  const detail = err.detail.replace(
    /^(\/(?:body|path|params|query)\/[A-Za-z_]+)(?:\/(\d+))?: /,
    (_, field: string) =>
      /^\/(body|query)\/elements?$/.test(field)
        ? `${elementLabel}: `
        : `${fieldLabel(field, ['name', 'id'])}: `,
  );
  if (!p?.errors?.length) {
    return detail === err.detail ? err : new ApiError(err.status, detail, p ? { ...p, detail } : p);
  }
  const errors = p.errors.map((e) => {
    const item = /^\/(?:body|query)\/elements?(?:\/(\d+))?$/.exec(e.field);
    if (!item) return e;
    const value = item[1] === undefined ? undefined : elements[Number(item[1])];
    const quoted = value !== undefined && !e.message.includes(value) ? `'${value}': ` : '';
    return { field: elementLabel, message: `${quoted}${e.message}` };
  });
  return new ApiError(err.status, detail, { ...p, detail, errors });
}

/** What the person can do next about a refused write, when the problem says. */
function hint(err: unknown): string | null {
  if (!(err instanceof ApiError)) return null;
  const p = err.problem;
  if (err.status === 409 && Array.isArray(p?.rule_ids) && p.rule_ids.length > 0) {
    return `rules naming it: ${p.rule_ids.join(', ')} (delete them with 'routeplane firewall rm ID')`;
  }
  if (err.status === 409 && typeof p?.name === 'string' && typeof p.host === 'string') {
    return `see it with 'routeplane sets list --target ${p.host}'`;
  }
  if (err.status === 502 && typeof p?.set_id === 'string') {
    return (
      `the change to set ${p.set_id} is recorded; its apply failed on ${p.host ?? '?'}` +
      (p.run_id ? `: see 'routeplane runs show ${p.run_id}'` : '')
    );
  }
  return null;
}

/**
 * runApi, with the API's element indexes turned into what was typed and a next step for a
 * refusal. `elements` is what the request sent, so an error on item 2 can quote it.
 */
function runSets<O extends object>(
  cmd: Command,
  body: (ctx: ApiContext<O>) => Promise<void>,
  positionals: readonly string[],
  elements: (ctx: ApiContext<O>) => { label: string; values: readonly string[] } = () => ({
    label: '<element>',
    values: [],
  }),
): Promise<void> {
  return runApi<O>(
    cmd,
    async (ctx) => {
      try {
        await body(ctx);
      } catch (err) {
        const e = elements(ctx);
        throw relabel(err, e.label, e.values);
      }
    },
    { positionals, hint },
  );
}

/**
 * A write's answer: the set (or one line for `rm`), then how each managed member took it.
 * A host that failed is a failure for whoever scripts it; a 202 says the run goes on.
 */
function reportWrite(
  ctx: ApiContext<unknown>,
  res: Written<FirewallSetWriteResult>,
  summary?: (s: FirewallSetWriteResult) => string,
): void {
  const s = res.body;
  const { hosts } = s.apply;
  show(ctx, s, (b) => {
    const head = summary ? summary(b) : formatFirewallSet(b);
    return hosts.length > 0
      ? `${head}\n${formatTable(SET_APPLY_COLUMNS, hosts.map(setApplyRow))}`
      : head;
  });
  if (hosts.length === 0) {
    ctx.note(
      `set ${s.name}: nothing to apply (routeplane manages the firewall of no host in '${s.host}' yet)`,
    );
  }
  if (res.status === 202 || !s.apply.settled) {
    const run = res.location?.split('/').pop() ?? hosts.find((h) => h.run_id)?.run_id;
    ctx.note(
      `set ${s.id} is recorded; the run applying it${run ? ` (${run})` : ''} is still going: ` +
        (run ? `see 'routeplane runs show ${run}'` : `see 'routeplane sets show ${s.id}'`),
    );
  }
  for (const h of hosts) {
    if (h.state === 'failed') ctx.fail(`set ${s.name}: apply failed on ${h.host}: ${h.error}`);
  }
}

/** `add` and `remove`: one line (a set may hold thousands; `show` lists them). */
function changed(verb: string, elements: readonly string[]) {
  return (s: FirewallSetWriteResult) =>
    `${verb} ${elements.length} element${elements.length === 1 ? '' : 's'}: set ${s.name} ` +
    `(${s.id}) of ${s.host} holds ${s.elements.length}\n`;
}

export function registerSetsCommand(program: Command): void {
  const sets = program
    .command('sets')
    .description(
      'firewall sets: named addresses or ports for a host or group, named by rules as @name',
    );

  addApiOptions(
    sets
      .command('list')
      .alias('ls')
      .description('live sets with their elements')
      .addOption(
        new Option(
          '--host <host>',
          "the sets this host's rules can name (its own and its groups')",
        ).conflicts('target'),
      )
      .option('--target <host-or-group>', 'only the sets made for this host or group'),
  ).action(function (this: Command) {
    return runSets<ListOptions>(
      this,
      async (ctx) => {
        const { host, target } = ctx.opts;
        const answer = await ctx.client.listFirewallSets({ host, target });
        if (ctx.json) return ctx.out(formatJson(answer));
        if (answer.items.length === 0) return ctx.note('no sets');
        ctx.out(formatTable(FIREWALL_SET_COLUMNS, answer.items.map(firewallSetRow)));
      },
      [],
    );
  });

  addApiOptions(
    sets
      .command('create')
      .description(
        'make a set; a rule names it as @NAME in src/dst (address) or sport/dport (port)',
      )
      .argument('<name>', 'what rules call it: lowercase letters, digits and _, from a letter')
      .addOption(
        new Option(
          '--host <host-or-group>',
          'inventory host, or a group (each member sees it)',
        ).makeOptionMandatory(),
      )
      .addOption(
        new Option('--type <type>', 'address (IPv4 and IPv6 prefixes) or port (ports, ranges)')
          .choices(SET_TYPES)
          .makeOptionMandatory(),
      )
      .option('--element <element>', 'an element; repeat or comma-separate', elementOption)
      .option('--comment <text>', 'free text shown with the set (no quotes or newlines)')
      .addOption(waitOption()),
  ).action(function (this: Command, name: string) {
    return runSets<CreateOptions>(
      this,
      async (ctx) => {
        const { host, type, element, comment, wait } = ctx.opts;
        const body: FirewallSetCreate = { name, host, type };
        if (element !== undefined) body.elements = element;
        if (comment !== undefined) body.comment = comment;
        reportWrite(ctx, await ctx.client.createFirewallSet(body, wait));
      },
      ['name'],
      (ctx) => ({ label: '--element', values: ctx.opts.element ?? [] }),
    );
  });

  addApiOptions(
    sets
      .command('show')
      .description('one set and its elements, live or deleted; exit 1 if there is no such set')
      .argument('<id>', 'set id'),
  ).action(function (this: Command, id: string) {
    return runSets(
      this,
      async (ctx) => show(ctx, await ctx.client.getFirewallSet(id), formatFirewallSet),
      ['id'],
    );
  });

  const elementCommands = [
    {
      name: 'add',
      description: 'add elements (those already in it stay) and apply the set where it is used',
      elements: 'addresses or prefixes, or ports or ranges (comma-separated too)',
      done: 'added',
      call: (ctx: ApiContext<{ wait?: number }>, id: string, elements: string[]) =>
        ctx.client.addFirewallSetElements(id, elements, ctx.opts.wait),
    },
    {
      name: 'remove',
      description: 'remove elements (absent ones are ignored) and apply the set where it is used',
      elements: 'elements to remove (comma-separated too)',
      done: 'removed',
      call: (ctx: ApiContext<{ wait?: number }>, id: string, elements: string[]) =>
        ctx.client.removeFirewallSetElements(id, elements, ctx.opts.wait),
    },
  ] as const;
  for (const c of elementCommands) {
    addApiOptions(
      sets
        .command(c.name)
        .description(c.description)
        .argument('<id>', 'set id')
        .argument('<element...>', c.elements)
        .addOption(waitOption()),
    ).action(function (this: Command, id: string, given: string[]) {
      const elements = splitElements(given);
      return runSets<{ wait?: number }>(
        this,
        async (ctx) => reportWrite(ctx, await c.call(ctx, id, elements), changed(c.done, elements)),
        ['id'],
        () => ({ label: '<element>', values: elements }),
      );
    });
  }

  addApiOptions(
    sets
      .command('rm')
      .alias('del')
      .description('delete a set no live rule names (kept readable); exit 1 if absent or named')
      .argument('<id>', 'set id')
      .addOption(waitOption()),
  ).action(function (this: Command, id: string) {
    return runSets<{ wait?: number }>(
      this,
      async (ctx) =>
        reportWrite(
          ctx,
          await ctx.client.deleteFirewallSet(id, ctx.opts.wait),
          (s) => `deleted set ${s.name} (${s.id}) of ${s.host}\n`,
        ),
      ['id'],
    );
  });

  addApiOptions(
    sets
      .command('events')
      .description(
        "a set's audit trail, oldest first: creation, elements added or removed, deletion",
      )
      .argument('<id>', 'set id'),
  ).action(function (this: Command, id: string) {
    return runSets(
      this,
      async (ctx) => {
        const answer = await ctx.client.listFirewallSetEvents(id);
        show(ctx, answer, (a) =>
          formatTable(FIREWALL_SET_EVENT_COLUMNS, a.items.map(firewallSetEventRow)),
        );
      },
      ['id'],
    );
  });
}
