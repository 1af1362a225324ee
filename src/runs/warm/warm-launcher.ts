import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import type { LaunchedPlaybook, PlaybookExit, PlaybookLauncher } from '../playbook-launcher.ts';
import type { RunWorkspace } from '../run-workspace.ts';
import type { WarmProcess } from './warm-process.ts';

/** A unix socket in the run's workspace that accepts the child's one connection. */
async function listenOnce(
  socketPath: string,
): Promise<{ server: Server; connection: Promise<Socket> }> {
  const server = createServer();
  const connection = new Promise<Socket>((resolve) => server.once('connection', resolve));
  server.listen(socketPath);
  await once(server, 'listening');
  return { server, connection };
}

const ended = (exit: PlaybookExit): LaunchedPlaybook => ({
  pgid: undefined,
  stdout: null,
  stderr: null,
  exited: Promise.resolve(exit),
});

/**
 * Runs each playbook in a child forked by the warm process: the same argv and workspace as a
 * spawned ansible-playbook, its stdout and stderr streamed back over two unix sockets in the
 * workspace (0700). Settings Ansible fixes at import come from the warm process's
 * environment; everything that differs between runs travels in argv and the workspace.
 */
export class WarmLauncher implements PlaybookLauncher {
  readonly mode = 'warm' as const;

  constructor(private readonly warm: WarmProcess) {}

  async launch(args: string[], ws: RunWorkspace): Promise<LaunchedPlaybook> {
    // Short names: the workspace path plus these must fit in a socket's 108 bytes.
    const out = await listenOnce(path.join(ws.dir, 'o'));
    const err = await listenOnce(path.join(ws.dir, 'e'));
    const stopListening = () => {
      out.server.close();
      err.server.close();
    };
    let child;
    try {
      child = await this.warm.run({
        argv: ['ansible-playbook', ...args],
        cwd: ws.dir,
        out: path.join(ws.dir, 'o'),
        err: path.join(ws.dir, 'e'),
      });
    } catch (e) {
      stopListening();
      return ended({ exitCode: null, signal: null, notStarted: (e as Error).message });
    }
    const pid = await child.started;
    if (pid === null) {
      stopListening();
      const exit = await child.exited;
      return ended({
        exitCode: exit.code,
        signal: exit.signal,
        notStarted:
          exit.lost ??
          `the warm runner's child ended before it ran the playbook (exit ${exit.code ?? exit.signal})`,
      });
    }
    // Both connections are made before "started" is sent, so both are there to accept.
    const [stdout, stderr] = await Promise.all([out.connection, err.connection]);
    stopListening();
    return {
      pgid: pid,
      stdout,
      stderr,
      exited: child.exited.then((exit) => ({
        exitCode: exit.code,
        signal: exit.signal,
        lost: exit.lost,
      })),
    };
  }

  /** Starts the warm process now, so the first run does not wait for Ansible's import. */
  async prepare(): Promise<void> {
    await this.warm.start();
  }

  async close(): Promise<void> {
    await this.warm.stop();
  }
}
