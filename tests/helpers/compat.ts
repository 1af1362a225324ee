import { expect } from 'vitest';
import type { Lab } from '../../src/lab/index.ts';
import { expectNoStack } from './problem.ts';
import { ownedRoutes } from './routes.ts';
import type { RequestOptions, TestResponse } from './server.ts';

/** The host the compat tests serve (COMPAT_HOST) on a lab of two hosts. */
export const COMPAT_HOST = 'h1';

/** The contract's `GW`: an address on h1's link, h2's. */
export const gatewayOf = (lab: Lab) => lab.hosts[1]!.ipv4;

/** route-manager's answers, upstream's spelling ("succesfully") kept on purpose. */
export const MSG = {
  added: 'Route succesfully added or scheduled',
  deleted: 'Route succesfully deleted',
  exists: (to: string) => `A route to ${to} already exists in the system`,
  updated: (to: string) => `Route ${to} successfully updated`,
  paused: (to: string) => `Route ${to} successfully paused`,
  activated: (to: string) => `Route ${to} successfully re-activated`,
  notFound: (to: string) => `Route ${to} not found in the database.`,
  deleteNotFound: (to: string) => `Route to ${to} not found in the database.`,
};

interface Requester {
  request(method: string, url: string, opts?: RequestOptions): Promise<TestResponse>;
}

/** A route-manager client: writes with the operator token, reads with the viewer token. */
export function compatClient(server: Requester) {
  const write = (method: string, path: string) => (body: unknown) =>
    server.request(method, path, { body, token: 'operator' });
  return {
    list: () => server.request('GET', '/routes/', { token: 'viewer' }),
    deleted: () => server.request('GET', '/routes/deleted', { token: 'viewer' }),
    put: write('PUT', '/routes/'),
    patch: write('PATCH', '/routes/'),
    remove: write('DELETE', '/routes/'),
    pause: write('PATCH', '/routes/pause'),
    activate: write('PATCH', '/routes/activate'),
  };
}

export type CompatClient = ReturnType<typeof compatClient>;

/** A route-manager success: the status and exactly `{"message"}`. */
export function expectMessage(res: TestResponse, status: number, message: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.body).toEqual({ message });
}

/** A FastAPI-style error: the status, plain JSON, exactly `{"detail"}`, and no stack. */
export function expectDetail(res: TestResponse, status: number, detail: string | RegExp): void {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
  expect(Object.keys(res.body ?? {})).toEqual(['detail']);
  if (typeof detail === 'string') expect(res.body.detail).toBe(detail);
  else expect(res.body.detail).toMatch(detail);
  expectNoStack(res.text);
}

/** `at` written as local time in a fixed UTC offset such as `+05:30`, e.g. for create_at. */
export function atOffset(at: Date, offset: string): string {
  const m = /^([+-])(\d{2}):(\d{2})$/.exec(offset);
  if (!m) throw new Error(`not an offset: ${offset}`);
  const minutes = (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
  return new Date(at.getTime() + minutes * 60_000).toISOString().replace('Z', offset);
}

/** routeplane's routes in the host's kernel, as `{to, gateway, dev}`, sorted by destination. */
export async function managedRoutes(lab: Lab, host = COMPAT_HOST) {
  return (await ownedRoutes(lab, host))
    .map(({ to, gateway, dev }) => ({ to, gateway, dev }))
    .sort((a, b) => a.to.localeCompare(b.to));
}

interface DatabaseRoute {
  to: string;
  via: string | null;
  dev: string | null;
  create_at: string | null;
  delete_at: string | null;
  active: boolean;
  status: string;
}

/** The `database_routes` entry of GET /routes/ for `to`, if listed. */
export async function listed(client: CompatClient, to: string) {
  const res = await client.list();
  expect(res.status, res.text).toBe(200);
  return (res.body.database_routes as DatabaseRoute[]).find((r) => r.to === to);
}

/** The `deleted_routes` entries of GET /routes/deleted for `to`, newest first. */
export async function listedDeleted(client: CompatClient, to: string) {
  const res = await client.deleted();
  expect(res.status, res.text).toBe(200);
  return (res.body.deleted_routes as (DatabaseRoute & { id: string; removed_at: string })[]).filter(
    (r) => r.to === to,
  );
}
