import http from 'node:http';
import path from 'node:path';
import { execa } from 'execa';
import express from 'express';
import { benchLab, benchServer, withCleanup, VIEWER_TOKEN, REPO, median } from '/work/main/bench/lib.ts';
import { HostStateStore } from '/work/main/src/hosts/host-state-store.ts';
import { InventorySource } from '/work/main/src/hosts/inventory-source.ts';
import { createLogger } from '/work/main/src/logger.ts';

const load = async (url: string, d: number) => {
  const r = await execa(process.execPath, [path.join(REPO,'node_modules/autocannon/autocannon.js'), '--json', '--no-progress', '-c', '16', '-d', String(d), '-H', `authorization=Bearer ${VIEWER_TOKEN}`, url], { reject: false });
  const j = JSON.parse(r.stdout); if (j.non2xx || j.errors) throw new Error('bad '+url+' '+JSON.stringify({n:j.non2xx,e:j.errors,ok:j['2xx'],codes:j.statusCodeStats})); return j['2xx'] / j.duration;
};
const variant = process.env.V ?? 'full';
await withCleanup('abl', 200000, async (cleanup) => {
  const lab = await benchLab(cleanup, 1);
  const api = await benchServer(cleanup, { INVENTORY: lab.inventoryPath }, variant.includes('silent') ? { logger: createLogger('silent') } : {});
  const auth = { authorization: `Bearer ${VIEWER_TOKEN}` };
  await (await fetch(`${api.url}/v1/hosts/h1?refresh=true`, { headers: auth })).text();
  const body = await (await fetch(`${api.url}/v1/hosts/h1`, { headers: auth })).json();
  if (variant.includes('cache')) {
    const orig = HostStateStore.prototype.get; const cache = new Map();
    HostStateStore.prototype.get = async function (h: string) { if (!cache.has(h)) cache.set(h, await orig.call(this, h)); return cache.get(h); };
  }
  if (variant.includes('inv')) {
    const orig = InventorySource.prototype.current; let c: any;
    InventorySource.prototype.current = async function () { return (c ??= await orig.call(this)); };
  }
  const app = express(); app.get('/v1/hosts/:host', (_q, s) => { s.json(body); });
  const srv = http.createServer(app); await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanup.defer('x', async () => { srv.closeAllConnections(); srv.close(); });
  const ex = `http://127.0.0.1:${(srv.address() as any).port}/v1/hosts/h1`;
  console.log('API', api.url, 'EX', ex, (await (await fetch(`${api.url}/v1/hosts/h1`, {headers: auth})).text()).slice(0,300), (await (await fetch(ex)).text()).slice(0,300)); await load(`${api.url}/v1/hosts/h1`, 2); await load(ex, 2);
  const a: number[] = [], e: number[] = [];
  for (let i = 0; i < 3; i++) { a.push(await load(`${api.url}/v1/hosts/h1`, 4)); e.push(await load(ex, 4)); }
  console.log(variant, 'api', median(a).toFixed(0), 'express', median(e).toFixed(0), 'ratio', (median(a)/median(e)).toFixed(2));
});
