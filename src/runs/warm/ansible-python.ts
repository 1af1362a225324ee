import { constants } from 'node:fs';
import { access, open } from 'node:fs/promises';
import path from 'node:path';

async function executable(file: string): Promise<boolean> {
  return access(file, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/** `name` as PATH resolves it, or null. A name with a slash is taken as a path. */
export async function onPath(
  name: string,
  pathVar = process.env.PATH ?? '',
): Promise<string | null> {
  if (name.includes('/')) return (await executable(name)) ? path.resolve(name) : null;
  for (const dir of pathVar.split(':').filter(Boolean)) {
    const candidate = path.join(dir, name);
    if (await executable(candidate)) return candidate;
  }
  return null;
}

/**
 * The Python interpreter ansible-playbook runs under, from its shebang (`#!/usr/bin/python3`,
 * or `#!/usr/bin/env python3` resolved on PATH): the one that has this Ansible installed,
 * which need not be the first python3 on PATH (a venv, pipx). Null when ansible-playbook is
 * not a Python script (a shell wrapper), so the warm runner cannot stand in for it.
 */
export async function ansiblePython(ansiblePlaybook: string): Promise<string | null> {
  const script = await onPath(ansiblePlaybook);
  if (!script) return null;
  let head: string;
  const fh = await open(script, 'r').catch(() => null);
  if (!fh) return null;
  try {
    const buf = Buffer.alloc(256);
    const { bytesRead } = await fh.read(buf, 0, 256, 0);
    head = buf.subarray(0, bytesRead).toString('utf8').split('\n')[0] ?? '';
  } finally {
    await fh.close();
  }
  if (!head.startsWith('#!')) return null;
  const words = head.slice(2).trim().split(/\s+/);
  let interpreter = words[0] ?? '';
  if (path.basename(interpreter) === 'env') {
    const name = words.slice(1).find((w) => !w.startsWith('-'));
    if (!name) return null;
    interpreter = (await onPath(name)) ?? '';
  }
  if (!/^python[0-9.]*$/.test(path.basename(interpreter))) return null;
  return (await executable(interpreter)) ? interpreter : null;
}
