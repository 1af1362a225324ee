// Fails when src/http/api-types.ts no longer matches openapi.yaml, so the TypeScript types
// can never drift from the contract (regenerate with `npm run types:generate`).
import { readFile } from 'node:fs/promises';
import openapiTS, { astToString } from 'openapi-typescript';

const root = new URL('../', import.meta.url);
const generated = astToString(await openapiTS(new URL('openapi.yaml', root)));
const committed = await readFile(new URL('src/http/api-types.ts', root), 'utf8');
const normalize = (s: string) => s.replace(/^\/\*\*[\s\S]*?\*\/\s*/, '').trim();
if (normalize(generated) !== normalize(committed)) {
  console.error('src/http/api-types.ts is stale: run `npm run types:generate`');
  process.exit(1);
}
