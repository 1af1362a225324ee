import { execa } from 'execa';
import { findHost, nsExec, type Lab } from '../../src/lab/index.ts';
import { vethName } from '../../src/lab/naming.ts';

/** The service address both test gateways hold: a target reaches whichever its route names. */
export const SERVICE = '203.0.113.10';
export const SERVICE_PORT = 7070;
/** The prefix the failover tests route via the gateways. */
export const SERVICE_NET = '203.0.113.0/24';

// Answers every connection with its own name; nothing is forwarded anywhere.
const LISTENER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall((sys.argv[3] + "\\n").encode())
    finally:
        c.close()
`;

const CONNECT = `
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    print(c.recv(64).decode().strip())
except OSError as e:
    print("error: %s" % e)
`;

/**
 * Makes a lab host a test gateway: SERVICE on its loopback and a TCP listener on it answering
 * `name`. The listener lives in the host's namespace (reaped with the lab); kill() ends it.
 */
export async function makeGateway(lab: Lab, host: string, name: string): Promise<{ kill(): void }> {
  await nsExec(lab, host, ['ip', 'addr', 'add', `${SERVICE}/32`, 'dev', 'lo']);
  const child = execa(
    'ip',
    [
      'netns',
      'exec',
      findHost(lab, host).netns,
      'python3',
      '-u',
      '-c',
      LISTENER,
      SERVICE,
      String(SERVICE_PORT),
      name,
    ],
    { reject: false, buffer: false, stdout: 'pipe' },
  );
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      seen += String(d);
      if (seen.includes('ready')) resolve();
    });
    void child.then((r) => reject(new Error(`listener on ${host} ended: ${String(r.exitCode)}`)));
  });
  // Not the child itself: an async function returning a promise would wait for its exit.
  return { kill: () => void child.kill() };
}

/** Which gateway answers a connection from `host` to SERVICE (or `error: ...`). */
export async function answerFrom(lab: Lab, host: string): Promise<string> {
  return (
    await nsExec(lab, host, ['python3', '-c', CONNECT, SERVICE, String(SERVICE_PORT)])
  ).trim();
}

/**
 * Cuts a lab host off (or back) by setting the root-namespace end of its veth down (or up):
 * the host keeps its addresses, as a router that lost its link does.
 */
export async function setLink(lab: Lab, host: string, up: boolean): Promise<void> {
  const n = lab.hosts.findIndex((h) => h.name === host) + 1;
  await execa('ip', ['link', 'set', vethName(lab.id, n), up ? 'up' : 'down']);
}

/** The gateways the host's kernel uses for `prefix` (one, or each nexthop of a multipath route). */
export async function kernelGateways(lab: Lab, host: string, prefix: string): Promise<string[]> {
  const text = await nsExec(lab, host, ['ip', '-j', 'route', 'show', prefix]);
  const routes = (text.trim() ? JSON.parse(text) : []) as {
    gateway?: string;
    nexthops?: { gateway?: string }[];
  }[];
  return routes
    .flatMap((r) => (r.nexthops ? r.nexthops.map((n) => n.gateway ?? '') : [r.gateway ?? '']))
    .sort();
}
