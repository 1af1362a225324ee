import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll } from 'vitest';
import { killNamespaceProcs } from '../../src/lab/procs.ts';
import { findHost, type Lab, type LabHost } from '../../src/lab/index.ts';

// A forwarding topology around one lab host:
//
//   client (192.0.2.2) --veth-- router (lab host) --veth-- destination (203.0.113.2)
//                   192.0.2.1 [to-client]   [to-destination] 203.0.113.1
//
// The router is a lab host (routeplane manages it over its lab address, eth0); client and
// destination are namespaces of their own, named rpt-<lab id>-client/-destination so that no
// lab (rp-<id>-hN, whose teardown and stale sweep match that pattern only) ever claims them.
// Both veth pairs are created directly between namespaces: the root namespace sees neither
// link, so two workers' topologies with the same documentation prefixes never meet. The client
// and destination route only each other's prefix via the router, never a default: nothing they
// send can leave the lab.

export const CLIENT_PREFIX = '192.0.2.0/24';
export const DESTINATION_PREFIX = '203.0.113.0/24';

export interface TopologyEnd {
  netns: string;
  /** The end's interface towards the router. */
  ifname: string;
  address: string;
}

export interface Topology {
  router: {
    host: LabHost;
    /** The router's address on the client link (the client's gateway). */
    clientSide: string;
    destinationSide: string;
    clientIf: string;
    destinationIf: string;
  };
  client: TopologyEnd;
  destination: TopologyEnd;
  /** Removes both namespaces (their processes first) and undoes ip_forward. Idempotent. */
  cleanup(): Promise<void>;
}

const ROUTER_CLIENT_IF = 'to-client';
const ROUTER_DESTINATION_IF = 'to-destination';
const END_IF = 'to-router';

export const topologyNetns = (labId: string, role: 'client' | 'destination') =>
  `rpt-${labId}-${role}`;

const netnsExists = async (ns: string) =>
  (await execa('ip', ['netns', 'list'])).stdout.split('\n').some((l) => l.split(' ')[0] === ns);

async function ipBatch(ns: string, lines: string[]): Promise<void> {
  await execa('ip', ['-n', ns, '-batch', '-'], { input: `${lines.join('\n')}\n` });
}

async function removeTopology(router: LabHost, namespaces: string[]): Promise<void> {
  const errors: unknown[] = [];
  for (const ns of namespaces) {
    try {
      if (!(await netnsExists(ns))) continue;
      await killNamespaceProcs(ns);
      // Its veth end goes with it, and with that end the router's peer.
      await execa('ip', ['netns', 'del', ns]);
    } catch (err) {
      errors.push(err);
    }
  }
  // The router outlives the topology only while its lab does.
  if (await netnsExists(router.netns)) {
    for (const link of [ROUTER_CLIENT_IF, ROUTER_DESTINATION_IF]) {
      await execa('ip', ['-n', router.netns, 'link', 'del', link], { reject: false });
    }
    await execa(
      'ip',
      ['netns', 'exec', router.netns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=0'],
      {
        reject: false,
      },
    );
  }
  const left = [];
  for (const ns of namespaces) if (await netnsExists(ns)) left.push(ns);
  if (left.length > 0) errors.push(new Error(`topology: could not remove ${left.join(', ')}`));
  if (errors.length > 0) throw new AggregateError(errors, 'topology cleanup failed');
}

/**
 * Builds client —veth— router —veth— destination around lab host `routerName`, with
 * net.ipv4.ip_forward=1 set inside the router's namespace. On failure, whatever was made is
 * removed before the error is thrown.
 */
export async function buildTopology(lab: Lab, routerName: string): Promise<Topology> {
  const router = findHost(lab, routerName);
  const client: TopologyEnd = {
    netns: topologyNetns(lab.id, 'client'),
    ifname: END_IF,
    address: '192.0.2.2',
  };
  const destination: TopologyEnd = {
    netns: topologyNetns(lab.id, 'destination'),
    ifname: END_IF,
    address: '203.0.113.2',
  };
  const topology: Topology = {
    router: {
      host: router,
      clientSide: '192.0.2.1',
      destinationSide: '203.0.113.1',
      clientIf: ROUTER_CLIENT_IF,
      destinationIf: ROUTER_DESTINATION_IF,
    },
    client,
    destination,
    cleanup: () => removeTopology(router, [client.netns, destination.netns]),
  };
  // Leftovers of a crashed run of the same lab id are not ours to keep.
  await topology.cleanup();
  try {
    for (const [end, routerIf] of [
      [client, ROUTER_CLIENT_IF],
      [destination, ROUTER_DESTINATION_IF],
    ] as const) {
      await execa('ip', ['netns', 'add', end.netns]);
      await execa('ip', [
        '-n',
        end.netns,
        'link',
        'add',
        end.ifname,
        'type',
        'veth',
        'peer',
        'name',
        routerIf,
        'netns',
        router.netns,
      ]);
    }
    const r = topology.router;
    await ipBatch(router.netns, [
      `addr add ${r.clientSide}/24 dev ${r.clientIf}`,
      `addr add ${r.destinationSide}/24 dev ${r.destinationIf}`,
      `link set ${r.clientIf} addrgenmode none up`,
      `link set ${r.destinationIf} addrgenmode none up`,
    ]);
    await ipBatch(client.netns, [
      'link set lo up',
      `addr add ${client.address}/24 dev ${client.ifname}`,
      `link set ${client.ifname} addrgenmode none up`,
      `route add ${DESTINATION_PREFIX} via ${r.clientSide}`,
    ]);
    await ipBatch(destination.netns, [
      'link set lo up',
      `addr add ${destination.address}/24 dev ${destination.ifname}`,
      `link set ${destination.ifname} addrgenmode none up`,
      `route add ${CLIENT_PREFIX} via ${r.destinationSide}`,
    ]);
    await execa('ip', [
      'netns',
      'exec',
      router.netns,
      'sysctl',
      '-q',
      '-w',
      'net.ipv4.ip_forward=1',
    ]);
  } catch (err) {
    await topology.cleanup().catch(() => undefined);
    throw err;
  }
  return topology;
}

/**
 * A topology around lab host `routerName` for the enclosing describe block: built in beforeAll
 * (register it after the useLab it names), removed in afterAll, also when a test failed.
 */
export function useTopology(
  fleet: { readonly lab: Lab },
  routerName: string,
): { get topology(): Topology } {
  let current: Topology | undefined;
  beforeAll(async () => {
    current = await buildTopology(fleet.lab, routerName);
  }, 60_000);
  afterAll(async () => {
    // A build that threw cleaned up after itself; one that never ran left nothing.
    if (current) await current.cleanup();
    current = undefined;
  }, 60_000);
  return {
    get topology(): Topology {
      if (!current) throw new Error('no topology: useTopology() is up between its hooks only');
      return current;
    },
  };
}

// The interpreter the lab inventory gives Ansible: a PATH lookup may find a version manager's
// shim, which costs a quarter of a second per probe.
const PYTHON = '/usr/bin/python3';

const LISTENER = `
import socket, sys, threading
label = sys.argv[1]
def serve(s, port):
    while True:
        c, peer = s.accept()
        try:
            c.sendall(("%s:%d from %s\\n" % (label, port, peer[0])).encode())
        except OSError:
            pass
        c.close()
socks = []
for port in map(int, sys.argv[2:]):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    socks.append((s, port))
for s, port in socks:
    threading.Thread(target=serve, args=(s, port), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
`;

/**
 * TCP listeners in namespace `netns` (one python3 process), each answering every connection
 * with one line `<label>:<port> from <peer address>` and closing it: the reply says which
 * listener took the connection and whom it saw. Resolves once every port is bound; the
 * returned function stops them.
 */
export async function bannerListeners(
  netns: string,
  label: string,
  ports: number[],
): Promise<() => Promise<void>> {
  const child: ResultPromise = execa(
    'ip',
    ['netns', 'exec', netns, PYTHON, '-u', '-c', LISTENER, label, ...ports.map(String)],
    { reject: false },
  );
  const stop = async () => {
    child.kill('SIGKILL');
    await child;
  };
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`listeners in ${netns}: not ready`)), 15_000);
      child.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      void child.then((r) => {
        clearTimeout(timer);
        reject(new Error(`listeners in ${netns} exited: ${String(r.stderr)}`));
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return stop;
}

const CONNECT = `
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
    c.settimeout(2)
    data = b""
    while not data.endswith(b"\\n"):
        chunk = c.recv(256)
        if not chunk:
            break
        data += chunk
    c.close()
except OSError:
    sys.exit(1)
sys.stdout.write(data.decode())
`;

/**
 * Opens a TCP connection from namespace `netns` to address:port (real packets; a second to
 * connect) and returns the line the listener sent, or undefined when no connection was made.
 */
export async function tcpBanner(
  netns: string,
  address: string,
  port: number,
): Promise<string | undefined> {
  const r = await execa(
    'ip',
    ['netns', 'exec', netns, PYTHON, '-c', CONNECT, address, String(port)],
    { reject: false },
  );
  return r.exitCode === 0 ? String(r.stdout).trim() : undefined;
}
