import { execa } from 'execa';
import { benchLab, benchServer, withCleanup, VIEWER_TOKEN, REPO } from '/work/main/bench/lib.ts';
import path from 'node:path';
await withCleanup('prof', 120000, async (cleanup) => {
  const lab = await benchLab(cleanup, 1);
  const api = await benchServer(cleanup, { INVENTORY: lab.inventoryPath, LOG_LEVEL: process.env.LL ?? 'info' });
  const auth = { authorization: `Bearer ${VIEWER_TOKEN}` };
  const g = await fetch(`${api.url}/v1/hosts/h1?refresh=true`, { headers: auth }); await g.text();
  const r = await execa(process.execPath, [path.join(REPO,'node_modules/autocannon/autocannon.js'), '--no-progress', '-c', '16', '-d', '8', '-H', `authorization=Bearer ${VIEWER_TOKEN}`, `${api.url}/v1/hosts/h1`], { reject: false });
  console.log(r.stderr.split('\n').slice(0,12).join('\n'));
});
