import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { slotAddressing } from './addressing.ts';
import { LabExistsError } from './errors.ts';
import { renderInventory, renderKnownHosts } from './inventory.ts';
import { generateKeyPair } from './keys.ts';
import {
  MAX_HOSTS,
  assertLabId,
  bridgeName,
  hostName,
  netnsName,
  randomLabId,
  resolveRoot,
} from './naming.ts';
import { buildNetwork, destroyNetwork, rootIPv4Addresses } from './netns.ts';
import { hostPaths, labPaths } from './paths.ts';
import { settleAll } from './settle.ts';
import { claimSlot, releaseSlots } from './slots.ts';
import { startSshd, sshdConfig } from './sshd.ts';
import { claimLabDir, ensureRoot, writeLabJson } from './state.ts';
import { findHost, type Lab } from './types.ts';

export interface LabUpOptions {
  id?: string;
  count: number;
  root?: string;
  /** Process whose death makes the lab stale (labDownStale). Default: this process. */
  ownerPid?: number;
}

function planLab(root: string, id: string, slot: number, count: number): Lab {
  const dir = path.join(root, id);
  const a = slotAddressing(slot);
  const paths = labPaths(dir);
  return {
    id,
    dir,
    slot,
    bridge: bridgeName(id),
    gatewayV4: a.gatewayV4,
    gatewayV6: a.gatewayV6,
    prefixV4: a.prefixV4,
    prefixV6: a.prefixV6,
    hosts: Array.from({ length: count }, (_, i) => ({
      name: hostName(i + 1),
      netns: netnsName(id, i + 1),
      ipv4: a.hostV4(i + 1),
      ipv6: a.hostV6(i + 1),
      ifname: 'eth0' as const,
      sshdPidFile: hostPaths(dir, hostName(i + 1)).pidFile,
    })),
    inventoryPath: paths.inventory,
    privateKeyPath: paths.privateKey,
    knownHostsPath: paths.knownHosts,
  };
}

async function claimId(
  root: string,
  wanted: string | undefined,
  ownerPid: number,
): Promise<string> {
  if (wanted !== undefined) {
    if (await claimLabDir(root, assertLabId(wanted), ownerPid)) return wanted;
    throw new LabExistsError(wanted, root);
  }
  for (let attempt = 0; attempt < 10; attempt++) {
    const id = randomLabId();
    if (id !== 'b' && (await claimLabDir(root, id, ownerPid))) return id;
  }
  throw new Error(`could not find a free lab id under ${root}`);
}

async function build(root: string, id: string, count: number): Promise<Lab> {
  // Owning the directory means owning the id: namespaces or links still named for it are
  // leftovers of an earlier lab whose directory was lost.
  await destroyNetwork(id);
  // A slot whose gateway address is configured here is used by something we do not track.
  const inUse = await rootIPv4Addresses();
  const slot = await claimSlot(root, id, (k) => !inUse.has(slotAddressing(k).gatewayV4));
  const lab = planLab(root, id, slot, count);
  await settleAll(
    lab.hosts.map((h) =>
      mkdir(hostPaths(lab.dir, h.name).remoteTmp, { recursive: true, mode: 0o700 }),
    ),
  );
  const hostKeys = new Map<string, string>();
  await settleAll([
    generateKeyPair(lab.privateKeyPath, `routeplane-lab-${id}`),
    ...lab.hosts.map(async (h) => {
      hostKeys.set(
        h.name,
        await generateKeyPair(hostPaths(lab.dir, h.name).hostKey, `${id}-${h.name}`),
      );
    }),
    buildNetwork(lab),
  ]);
  await settleAll([
    writeFile(lab.knownHostsPath, renderKnownHosts(lab, hostKeys)),
    writeFile(lab.inventoryPath, renderInventory(lab)),
    writeLabJson(lab),
    ...lab.hosts.map((h) => writeFile(hostPaths(lab.dir, h.name).config, sshdConfig(lab, h))),
  ]);
  await settleAll(lab.hosts.map((h) => startSshd(lab, h.name)));
  return lab;
}

/** Create a lab of `count` hosts, each a network namespace with its own sshd. Needs root. */
export async function labUp(opts: LabUpOptions): Promise<Lab> {
  const { count } = opts;
  if (!Number.isInteger(count) || count < 1 || count > MAX_HOSTS) {
    throw new Error(`lab host count must be an integer 1..${MAX_HOSTS}, got ${count}`);
  }
  const root = resolveRoot(opts.root);
  await ensureRoot(root);
  const id = await claimId(root, opts.id, opts.ownerPid ?? process.pid);
  try {
    return await build(root, id, count);
  } catch (err) {
    try {
      await labDown({ id, root });
    } catch (cleanupErr) {
      throw new AggregateError([err, cleanupErr], `lab ${id}: setup failed, and so did cleanup`);
    }
    throw err;
  }
}

/** Remove everything of lab `id`: processes, namespaces, links, slot claim, directory. Idempotent. */
export async function labDown(opts: { id: string; root?: string }): Promise<void> {
  const id = assertLabId(opts.id);
  const root = resolveRoot(opts.root);
  await destroyNetwork(id);
  // Slot before directory: a claim whose lab dir is missing then only comes from outside
  // interference, which is what labDownStale treats as orphaned.
  await releaseSlots(root, id);
  await rm(path.join(root, id), { recursive: true, force: true });
}

/** Run argv inside the host's network namespace; returns stdout. */
export async function nsExec(lab: Lab, hostName: string, argv: string[]): Promise<string> {
  const host = findHost(lab, hostName);
  const { stdout } = await execa('ip', ['netns', 'exec', host.netns, ...argv]);
  return stdout;
}
