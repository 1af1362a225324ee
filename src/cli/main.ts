import { Command } from 'commander';
import { registerLabCommand } from './lab-command.ts';

const program = new Command('routeplane')
  .description('routeplane: network control plane for fleets of Linux hosts')
  .showHelpAfterError();

registerLabCommand(program);

await program.parseAsync(process.argv);
