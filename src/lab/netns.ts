import { readdir, rm, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { V4_PREFIX_LEN, V6_PREFIX_LEN } from './addressing.ts';
import { errnoCode } from './errors.ts';
import { bridgeName, isVethOf, labIdOfBridge, labIdOfNetns, vethName } from './naming.ts';
import { killNamespaceProcs } from './procs.ts';
import { settleAll } from './settle.ts';
import type { Lab } from './types.ts';

const NETNS_DIR = '/run/netns';
// statfs type of a namespace file (a bind mount of nsfs); an unmounted leftover file is not.
const NSFS_MAGIC = 0x6e736673;

async function ipBatch(lines: string[], ns?: string): Promise<void> {
  const args = ns ? ['-n', ns, '-batch', '-'] : ['-batch', '-'];
  await execa('ip', args, { input: `${lines.join('\n')}\n` });
}

export async function listNetns(): Promise<string[]> {
  try {
    return await readdir(NETNS_DIR);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
}

export async function netnsExists(ns: string): Promise<boolean> {
  try {
    await stat(`${NETNS_DIR}/${ns}`);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
}

export async function listLinkNames(): Promise<string[]> {
  const { stdout } = await execa('ip', ['-j', 'link', 'show']);
  return (JSON.parse(stdout) as { ifname: string }[]).map((l) => l.ifname);
}

export async function rootIPv4Addresses(): Promise<Set<string>> {
  const { stdout } = await execa('ip', ['-j', '-4', 'addr', 'show']);
  const links = JSON.parse(stdout) as { addr_info?: { local?: string }[] }[];
  return new Set(links.flatMap((l) => (l.addr_info ?? []).map((a) => a.local ?? '')));
}

/** Ids of labs that have a namespace or bridge on this machine. */
export async function labIdsWithNetwork(): Promise<Set<string>> {
  const [namespaces, links] = await Promise.all([listNetns(), listLinkNames()]);
  const ids = [...namespaces.map(labIdOfNetns), ...links.map(labIdOfBridge)];
  return new Set(ids.filter((id): id is string => id !== undefined));
}

export async function buildNetwork(lab: Lab): Promise<void> {
  // The peer is created directly inside the namespace: naming it eth0 in the root namespace
  // first would clash with the machine's own eth0.
  await ipBatch([
    ...lab.hosts.map((h) => `netns add ${h.netns}`),
    `link add ${lab.bridge} type bridge`,
    `addr add ${lab.gatewayV4}/${V4_PREFIX_LEN} dev ${lab.bridge}`,
    `addr add ${lab.gatewayV6}/${V6_PREFIX_LEN} dev ${lab.bridge} nodad`,
    `link set ${lab.bridge} up`,
    ...lab.hosts.flatMap((h, i) => {
      const veth = vethName(lab.id, i + 1);
      return [
        `link add ${veth} type veth peer name eth0 netns ${h.netns}`,
        `link set ${veth} master ${lab.bridge} addrgenmode none up`,
      ];
    }),
  ]);
  await settleAll(
    lab.hosts.map(async (h) => {
      // The kernel recycles namespace inodes: fence files a lab torn down without cleanup (a
      // crash, an older version) left under this inode are not this host's history.
      await removeFenceFiles(h.netns);
      // DAD would leave fresh IPv6 addresses (and eth0's link-local) tentative for ~1-2 s.
      const dadOff = ['all', 'default', 'eth0'].map((i) => `net.ipv6.conf.${i}.accept_dad=0`);
      await execa('ip', ['netns', 'exec', h.netns, 'sysctl', '-q', '-w', ...dadOff]);
      // Routes come after "link up": the connected /28 only exists once eth0 is up.
      await ipBatch(
        [
          'link set lo up',
          `addr add ${h.ipv4}/${V4_PREFIX_LEN} dev eth0`,
          `addr add ${h.ipv6}/${V6_PREFIX_LEN} dev eth0 nodad`,
          'link set eth0 up',
          `route add default via ${lab.gatewayV4}`,
          `route add ::/0 via ${lab.gatewayV6}`,
        ],
        h.netns,
      );
    }),
  );
}

/**
 * The namespace's inode number, as its own processes see it in /proc/self/ns/net; undefined
 * when `ns` is not a mounted namespace (gone, or a leftover file).
 */
export async function netnsInode(ns: string): Promise<number | undefined> {
  const file = `${NETNS_DIR}/${ns}`;
  try {
    if ((await statfs(file)).type !== NSFS_MAGIC) return undefined;
    return (await stat(file)).ino;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Where the apply module's host-side fence keeps its files (playbooks/module_utils/
 * routeplane_fence.py): `routeplane-<inventory host>-<netns inode>.lock`, `.log` and the rotated
 * `.log.1`, in /run/lock (or /tmp where there is none); the firewall module keeps what it last
 * applied beside them (`.firewall.json`), and its commit confirmed's files (`.firewall.previous.nft`,
 * `.firewall.pending-<token>`, `.firewall.reverted`).
 */
export async function fenceDir(): Promise<string> {
  const dir = await stat('/run/lock').catch(() => undefined);
  return dir?.isDirectory() ? '/run/lock' : '/tmp';
}

/** The fence files of whichever hosts ran in the namespace with this inode. */
export async function fenceFilesOf(inode: number): Promise<string[]> {
  const dir = await fenceDir();
  const own = new RegExp(`^routeplane-.+-${inode}\\.(lock|log|log\\.1|firewall\\.[A-Za-z0-9.-]+)$`);
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => own.test(n)).map((n) => path.join(dir, n));
}

/**
 * Removes the namespace's fence files: the inode is unique only while the namespace lives, so
 * they would otherwise pile up as labs come and go. Call with nothing left running in it.
 */
export async function removeFenceFiles(ns: string): Promise<void> {
  const inode = await netnsInode(ns);
  if (inode === undefined) return;
  await settleAll((await fenceFilesOf(inode)).map((f) => rm(f, { force: true })));
}

/** Remove every namespace and link named for the lab id, reaping the namespaces' processes. */
export async function destroyNetwork(id: string): Promise<void> {
  const namespaces = (await listNetns()).filter((ns) => labIdOfNetns(ns) === id);
  await settleAll(
    namespaces.map(async (ns) => {
      await killNamespaceProcs(ns);
      // Before the namespace goes: its inode names the files.
      await removeFenceFiles(ns);
      await execa('ip', ['netns', 'del', ns], { reject: false });
    }),
  );
  // A veth pair dies with its namespace end; the bridge and half-made veths do not.
  const ownLink = (name: string) => name === bridgeName(id) || isVethOf(id, name);
  for (const link of (await listLinkNames()).filter(ownLink)) {
    await execa('ip', ['link', 'del', link], { reject: false });
  }
  const leftNs = (await listNetns()).filter((ns) => labIdOfNetns(ns) === id);
  const leftLinks = (await listLinkNames()).filter(ownLink);
  if (leftNs.length + leftLinks.length > 0) {
    throw new Error(`lab ${id}: could not remove ${[...leftNs, ...leftLinks].join(', ')}`);
  }
}
