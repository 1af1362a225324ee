import { describe, expect, it } from 'vitest';
import { cutsManagement } from '../../../src/firewall/management-guard.ts';
import { parseRuleSpec, type RuleInput } from '../../../src/firewall/rule-input.ts';

const m = { sources: ['198.51.100.7'], sshPort: 22 };
const cut = (input: Omit<RuleInput, 'host'>) =>
  cutsManagement(parseRuleSpec({ host: 'h1', ...input }, '/body'), m);

describe('cutsManagement', () => {
  it('when an input drop covers the controller and SSH, then it is named; another source or port is fine', () => {
    expect(cut({ chain: 'input', action: 'drop' })).toMatch(
      /drop management traffic from 198\.51\.100\.7/,
    );
    expect(cut({ chain: 'input', src: ['198.51.100.0/24'], action: 'reject' })).not.toBeNull();
    expect(cut({ chain: 'input', src: ['192.0.2.0/24'], action: 'drop' })).toBeNull();
    expect(cut({ chain: 'input', protocol: 'tcp', dport: ['80'], action: 'drop' })).toBeNull();
    expect(cut({ chain: 'input', protocol: 'udp', action: 'drop' })).toBeNull();
    expect(cut({ chain: 'input', action: 'accept' })).toBeNull();
  });

  it('when an output drop covers SSH answers to the controller, then it is named', () => {
    expect(cut({ chain: 'output', protocol: 'tcp', sport: ['20-30'], action: 'drop' })).toMatch(
      /SSH answers to 198\.51\.100\.7/,
    );
    expect(cut({ chain: 'output', dst: ['2001:db8::/32'], action: 'drop' })).toBeNull();
  });

  it('when a DNAT redirects SSH from management, then it is named; on the SSH port given by the inventory too', () => {
    const dnat = (dport: string) =>
      parseRuleSpec(
        {
          host: 'h1',
          chain: 'prerouting',
          protocol: 'tcp',
          dport: [dport],
          action: 'dnat',
          to: { address: '127.0.0.1' },
        },
        '/body',
      );
    expect(cutsManagement(dnat('22'), m)).toMatch(/redirect SSH/);
    expect(cutsManagement(dnat('22'), { ...m, sshPort: 2222 })).toBeNull();
    expect(cutsManagement(dnat('2222'), { ...m, sshPort: 2222 })).toMatch(/port 2222/);
  });
});
