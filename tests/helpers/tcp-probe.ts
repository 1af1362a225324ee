import { execa, type ResultPromise } from 'execa';
import type { LabHost } from '../../src/lab/types.ts';

/**
 * TCP listeners inside a lab host (python3 is on every lab host), accepting and closing every
 * connection; `stop` ends them. Given time to bind before it resolves.
 */
export async function tcpListeners(host: LabHost, ports: number[]): Promise<() => Promise<void>> {
  const children: ResultPromise[] = ports.map((port) => {
    const code =
      'import socket\n' +
      's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n' +
      `s.bind(("0.0.0.0", ${port})); s.listen(16)\n` +
      'while True:\n    c, _ = s.accept(); c.close()\n';
    return execa('ip', ['netns', 'exec', host.netns, 'python3', '-c', code], { reject: false });
  });
  await new Promise((r) => setTimeout(r, 300));
  return async () => {
    for (const c of children) c.kill('SIGKILL');
    await Promise.allSettled(children);
  };
}

/** Whether `from` can open a TCP connection to `to`'s port within a second: real packets. */
export async function tcpReachable(from: LabHost, to: LabHost, port: number): Promise<boolean> {
  const code =
    'import socket, sys\n' +
    `try:\n    socket.create_connection(("${to.ipv4}", ${port}), timeout=1).close()\n` +
    'except OSError:\n    sys.exit(1)\n';
  const r = await execa('ip', ['netns', 'exec', from.netns, 'python3', '-c', code], {
    reject: false,
  });
  return r.exitCode === 0;
}
