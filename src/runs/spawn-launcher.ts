import { execa } from 'execa';
import type { LaunchedPlaybook, PlaybookLauncher } from './playbook-launcher.ts';
import type { RunWorkspace } from './run-workspace.ts';

/** A new ansible-playbook process per run: Ansible is imported and configured every time. */
export class SpawnLauncher implements PlaybookLauncher {
  readonly mode = 'spawn' as const;

  constructor(
    private readonly ansiblePlaybook: string,
    /** The run's environment, built around its workspace's directories. */
    private readonly environment: (ws: RunWorkspace) => Record<string, string>,
  ) {}

  async launch(args: string[], ws: RunWorkspace): Promise<LaunchedPlaybook> {
    const child = execa(this.ansiblePlaybook, args, {
      cwd: ws.dir,
      env: this.environment(ws),
      extendEnv: false,
      // Its own process group, so cancel and timeout reach every process it starts.
      detached: true,
      reject: false,
      stdin: 'ignore',
      // Read as streams by the runner: no whole-process buffer, whatever the run prints.
      buffer: false,
    });
    return {
      pgid: child.pid,
      stdout: child.stdout,
      stderr: child.stderr,
      exited: child.then((r) => {
        const exitCode = typeof r.exitCode === 'number' ? r.exitCode : null;
        const signal = r.signal ?? null;
        // No exit code and no signal: the process never ran (ENOENT, EACCES).
        const notStarted =
          exitCode === null && signal === null ? (r.originalMessage ?? r.message) : undefined;
        return { exitCode, signal, notStarted };
      }),
    };
  }

  async close(): Promise<void> {}
}
