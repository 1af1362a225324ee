import { readFile } from 'node:fs/promises';
import { execa } from 'execa';

/** Create an ed25519 key pair without passphrase; returns "ssh-ed25519 <base64>". */
export async function generateKeyPair(file: string, comment: string): Promise<string> {
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], {
    stdin: 'ignore',
  });
  const [type, key] = (await readFile(`${file}.pub`, 'utf8')).trim().split(/\s+/);
  if (!type || !key) throw new Error(`ssh-keygen wrote an unreadable ${file}.pub`);
  return `${type} ${key}`;
}
