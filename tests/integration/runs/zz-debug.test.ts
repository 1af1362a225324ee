import { it } from 'vitest';
import { useLab } from '../../helpers/lab.ts';
import { startTestServer } from '../../helpers/server.ts';
const fleet = useLab(1);
it('debug', async () => {
  const server = await startTestServer({ INVENTORY: fleet.lab.inventoryPath, VALIDATE_RESPONSES: 'false' });
  const res = await server.request('POST', '/v1/runs', { body: { playbook: 'pause', limit: ['h1'] } });
  console.log(res.status, res.text);
  console.log(server.logs.filter((l) => /error|fail/i.test(l)).join('\n'));
  await server.close();
}, 60000);
