import { randomInt } from 'node:crypto';
import path from 'node:path';

// Namespaces and links are machine-wide, shared by every lab (and every test worker), so each
// name embeds the lab id. The id stays short because "rp<id>-<N>" must fit IFNAMSIZ (15).
export const LAB_ID_PATTERN = /^[a-z0-9]{1,6}$/;
export const MAX_HOSTS = 13;

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
// Paths end up in ssh -o options and ansible_ssh_common_args, both split on whitespace.
const SAFE_PATH = /^\/[A-Za-z0-9._/-]*$/;

export function defaultLabRoot(): string {
  return process.env.LAB_ROOT || '/tmp/routeplane-labs';
}

export function resolveRoot(root?: string): string {
  const resolved = path.resolve(root ?? defaultLabRoot());
  if (!SAFE_PATH.test(resolved)) {
    throw new Error(`lab root ${JSON.stringify(resolved)} may only contain [A-Za-z0-9._/-]`);
  }
  return resolved;
}

export function assertLabId(id: string): string {
  if (!LAB_ID_PATTERN.test(id)) {
    throw new Error(`invalid lab id ${JSON.stringify(id)}: expected 1-6 characters of [a-z0-9]`);
  }
  // Lab "b"'s veths rpb-1..rpb-13 would be the bridges of labs "1".."13".
  if (id === 'b') throw new Error('lab id "b" is reserved: its veth names clash with bridge names');
  return id;
}

export function randomLabId(): string {
  let id = '';
  for (let i = 0; i < 6; i++) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return id;
}

export const hostName = (n: number): string => `h${n}`;
export const netnsName = (id: string, n: number): string => `rp-${id}-h${n}`;
export const bridgeName = (id: string): string => `rpb-${id}`;
export const vethName = (id: string, n: number): string => `rp${id}-${n}`;

export function labIdOfNetns(name: string): string | undefined {
  return /^rp-([a-z0-9]{1,6})-h\d+$/.exec(name)?.[1];
}

export function labIdOfBridge(name: string): string | undefined {
  return /^rpb-([a-z0-9]{1,6})$/.exec(name)?.[1];
}

export function isVethOf(id: string, linkName: string): boolean {
  return linkName.startsWith(`rp${id}-`) && /^\d+$/.test(linkName.slice(id.length + 3));
}
