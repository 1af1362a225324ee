import { afterAll, beforeAll, describe, it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

describe('probe', { timeout: 90_000 }, () => {
  const fleet = useLab(2);
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath, COMPAT_HOST: 'h1' });
  }, 90_000);
  afterAll(async () => { await server?.close(); }, 90_000);
  it('probe', async () => {
    const show = async (m: string, p: string, body?: unknown) => {
      const r = await server.request(m, p, { body, token: 'operator' });
      console.log(m, p, JSON.stringify(body), '->', r.status, r.text.slice(0, 400));
    };
    await show('PUT', '/routes/', { to: '203.0.113.77', via: '192.0.2.1' });
    await show('GET', '/v1/routes?host=h1');
    await show('PUT', '/routes/', { to: '203.0.113.78', via: fleet.lab.hosts[1]!.ipv4 });
    await show('PATCH', '/routes/', { to: '203.0.113.78', dev: 'nope0' });
    await show('GET', '/v1/routes?host=h1');
    await show('PUT', '/routes/', { to: fleet.lab.prefixV4, via: fleet.lab.hosts[1]!.ipv4 });
    await show('PUT', '/routes/', { to: '2001:db8:f000::10', dev: 'eth0' });
    await show('PUT', '/routes/', { to: '2001:DB8:F000:0::10', dev: 'eth0' });
    await show('PATCH', '/routes/', { to: '2001:db8:f000::10', create_at: new Date(Date.now() + 3600_000).toISOString() });
    await show('GET', '/routes/');
  });
});
