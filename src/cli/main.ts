import { Command } from 'commander';
import { registerFirewallCommand } from './firewall-command.ts';
import { registerHostsCommand } from './hosts-command.ts';
import { registerLabCommand } from './lab-command.ts';
import { registerRoutesCommand } from './routes-command.ts';
import { registerRunsCommand } from './runs-command.ts';
import { registerSetsCommand } from './sets-command.ts';
import { registerWatchCommand } from './watch-command.ts';

const program = new Command('routeplane')
  .description('routeplane: network control plane for fleets of Linux hosts')
  .showHelpAfterError();

registerRoutesCommand(program);
registerFirewallCommand(program);
registerSetsCommand(program);
registerHostsCommand(program);
registerRunsCommand(program);
registerWatchCommand(program);
registerLabCommand(program);

await program.parseAsync(process.argv);
