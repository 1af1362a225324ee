import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { defaultLabRoot, labDown, labDownStale, labUp, listLabs, MAX_HOSTS } from '../lab/index.ts';

function requireRoot(cmd: Command): void {
  if (process.getuid?.() !== 0) {
    cmd.error('lab: needs root (network namespaces, bridges, sshd); run it as root', {
      exitCode: 1,
    });
  }
}

function parsePositiveInt(value: string, what: string, cmd: Command): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1)
    cmd.error(`lab: ${what} must be a positive integer, got ${value}`);
  return n;
}

/**
 * A CLI process exits right after `lab up`, so using its own pid as owner would make the lab
 * stale at once. Tie it to the terminal/CI session instead: it goes stale when that ends.
 */
async function sessionLeaderPid(): Promise<number> {
  const stat = await readFile('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const sid = Number(fields[3]);
  return sid > 0 ? sid : process.pid;
}

// Every action reports failure through commander, so the message reaches stderr with exit 1.
function run(cmd: Command, fn: () => Promise<void>): Promise<void> {
  return fn().catch((err: unknown) => {
    cmd.error(`lab ${cmd.name()}: ${err instanceof Error ? err.message : String(err)}`, {
      exitCode: 1,
    });
  });
}

export function registerLabCommand(program: Command): void {
  const lab = program
    .command('lab')
    .description('test fleet: Linux network namespaces on a bridge, each running its own sshd');
  const rootOption = () =>
    new Option('--root <dir>', 'directory holding lab state (env LAB_ROOT)').default(
      defaultLabRoot(),
    );

  lab
    .command('up')
    .description('create a lab; prints the Lab as JSON on stdout')
    .argument('[count]', `number of hosts, 1..${MAX_HOSTS}`, '3')
    .option('--id <id>', 'lab id, 1-6 characters [a-z0-9] (default: random)')
    .option('--owner-pid <pid>', 'lab goes stale when this process dies (default: session leader)')
    .addOption(rootOption())
    .action(function (
      this: Command,
      count: string,
      opts: { id?: string; ownerPid?: string; root: string },
    ) {
      requireRoot(this);
      return run(this, async () => {
        const result = await labUp({
          id: opts.id,
          count: parsePositiveInt(count, 'count', this),
          root: opts.root,
          ownerPid: opts.ownerPid
            ? parsePositiveInt(opts.ownerPid, '--owner-pid', this)
            : await sessionLeaderPid(),
        });
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      });
    });

  lab
    .command('down')
    .description('remove a lab (--id) or every lab whose owner process is gone (--stale)')
    .addOption(new Option('--id <id>', 'lab id').conflicts('stale'))
    .addOption(new Option('--stale', 'remove labs of dead owners and orphaned namespaces'))
    .addOption(rootOption())
    .action(function (this: Command, opts: { id?: string; stale?: boolean; root: string }) {
      requireRoot(this);
      if (!opts.id && !opts.stale) this.error('lab down: give --id <id> or --stale');
      return run(this, async () => {
        if (opts.id) {
          await labDown({ id: opts.id, root: opts.root });
          process.stderr.write(`lab ${opts.id}: down\n`);
        } else {
          const removed = await labDownStale({ root: opts.root });
          process.stderr.write(
            `removed ${removed.length} stale lab(s)${removed.length ? `: ${removed.join(' ')}` : ''}\n`,
          );
        }
      });
    });

  lab
    .command('ls')
    .description('list labs under the root')
    .option('--json', 'print JSON')
    .addOption(rootOption())
    .action(function (this: Command, opts: { json?: boolean; root: string }) {
      return run(this, async () => {
        const labs = await listLabs(opts.root);
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(labs, null, 2)}\n`);
          return;
        }
        const rows = labs.map((l) => [
          l.id,
          l.lab ? String(l.lab.slot) : '-',
          l.lab ? l.lab.prefixV4 : '-',
          l.lab ? String(l.lab.hosts.length) : '-',
          `${l.ownerPid ?? '-'}${l.ownerAlive ? '' : ' (dead)'}`,
          l.lab?.inventoryPath ?? l.dir,
        ]);
        const header = ['ID', 'SLOT', 'PREFIX', 'HOSTS', 'OWNER', 'INVENTORY'];
        const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
        for (const row of [header, ...rows]) {
          process.stdout.write(
            `${row
              .map((c, i) => c.padEnd(widths[i]!))
              .join('  ')
              .trimEnd()}\n`,
          );
        }
      });
    });
}
