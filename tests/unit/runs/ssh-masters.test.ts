import { describe, expect, it } from 'vitest';
import { controlPathVar, hostKey } from '../../../src/runs/ssh-masters.ts';

describe('SSH master socket names', () => {
  it("when a host is named, then its key is the first 12 hex of its name's SHA-1, as Jinja's hash('sha1') gives", () => {
    expect(hostKey('h1')).toBe('ac4ae97285c1');
  });

  it('when the directory is a plain path, then the control path is it, the host key and a digest of its connection settings', () => {
    const v = controlPathVar('/tmp/rp-0123abcd/89abcdef/m');
    expect(
      v.startsWith("/tmp/rp-0123abcd/89abcdef/m/{{ (inventory_hostname | hash('sha1'))[:12] }}-"),
    ).toBe(true);
    for (const setting of [
      'ansible_host',
      'ansible_port',
      'ansible_user',
      'ansible_ssh_private_key_file',
      'ansible_ssh_common_args',
    ]) {
      expect(v).toContain(`${setting} | default('')`);
    }
  });

  it('when the directory holds anything a template could read as code, then it is refused', () => {
    expect(() => controlPathVar("/tmp/{{ lookup('pipe', 'id') }}")).toThrow(/not a plain path/);
    expect(() => controlPathVar('/tmp/a b')).toThrow(/not a plain path/);
  });
});
