import type { Knex } from 'knex';
import { expect } from 'vitest';
import { nsExec, type Lab } from '../../src/lab/index.ts';
import { normaliseKernelRoute } from '../../src/routes/kernel-route.ts';
import { sleep } from './runs.ts';
import type { TestServer } from './server.ts';

/** Retry settings for tests that wait for a failed host to converge. */
export const FAST_RETRIES = { RECONCILE_RETRY_BASE_S: '0.5', RECONCILE_RETRY_MAX_S: '2' };

/** routeplane's ownership marker when ROUTE_PROTO is left at its default. */
export const ROUTE_PROTO = '147';

/** Generous bound for "the kernel shows it": an ansible run on two busy cores, plus retries. */
export const KERNEL_WAIT_MS = 30_000;

/** One unicast route as the kernel lists it (`ip -N -j route show table all`), normalised. */
export interface KernelRoute {
  family: 4 | 6;
  /** Always a prefix: the kernel prints host routes without /32 or /128. */
  to: string;
  table: number;
  metric: number;
  /** Numeric protocol id as text, '' when the kernel prints none (boot). */
  protocol: string;
  gateway: string | null;
  dev: string | null;
}

interface IpJsonRoute {
  type?: string;
  dst: string;
  gateway?: string;
  dev?: string;
  table?: string;
  protocol?: string;
  metric?: number;
}

/** Every unicast route of every table in the host's namespace, both families. */
export async function kernelRoutes(lab: Lab, host: string): Promise<KernelRoute[]> {
  const all: KernelRoute[] = [];
  for (const family of [4, 6] as const) {
    const text = await nsExec(lab, host, [
      'ip',
      '-N',
      '-j',
      `-${family}`,
      'route',
      'show',
      'table',
      'all',
    ]);
    const rows = (text.trim() ? JSON.parse(text) : []) as IpJsonRoute[];
    // With -N the kernel's own local/broadcast/multicast entries carry a numeric type.
    for (const r of rows.filter((x) => x.type === undefined || x.type === 'unicast')) {
      // The one normalisation routeplane itself uses (src/routes/kernel-route.ts).
      const key = normaliseKernelRoute(r, family);
      all.push({
        family,
        to: key.dst,
        table: key.table,
        metric: key.metric,
        protocol: r.protocol ?? '',
        gateway: r.gateway ?? null,
        dev: r.dev ?? null,
      });
    }
  }
  return all;
}

/** Routes carrying routeplane's marker. */
export async function ownedRoutes(lab: Lab, host: string): Promise<KernelRoute[]> {
  return (await kernelRoutes(lab, host)).filter((r) => r.protocol === ROUTE_PROTO);
}

export interface RouteKey {
  to: string;
  table?: number;
  metric?: number;
}

export function findRoute(routes: KernelRoute[], key: RouteKey): KernelRoute | undefined {
  return routes.find(
    (r) =>
      r.to === key.to &&
      r.table === (key.table ?? 254) &&
      (key.metric === undefined || r.metric === key.metric),
  );
}

/** Polls the host's kernel until `accept` holds for its routes; returns those routes. */
export function kernelWhen(
  lab: Lab,
  host: string,
  what: string,
  accept: (routes: KernelRoute[]) => boolean,
  ms = KERNEL_WAIT_MS,
): Promise<KernelRoute[]> {
  return poll(
    `${host}: ${what}`,
    async () => {
      const routes = await kernelRoutes(lab, host);
      return accept(routes) ? routes : undefined;
    },
    ms,
  );
}

/** Like `eventually`, at a pace that leaves the two cores to the runs under test. */
export async function poll<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  ms = KERNEL_WAIT_MS,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Polls until the kernel has a routeplane route for `key`; returns it. */
export async function kernelHas(lab: Lab, host: string, key: RouteKey, ms?: number) {
  const routes = await kernelWhen(
    lab,
    host,
    `${key.to} present`,
    (rs) =>
      findRoute(
        rs.filter((r) => r.protocol === ROUTE_PROTO),
        key,
      ) !== undefined,
    ms,
  );
  return findRoute(
    routes.filter((r) => r.protocol === ROUTE_PROTO),
    key,
  )!;
}

/** Polls until the kernel has no routeplane route for `key`. */
export async function kernelLacks(lab: Lab, host: string, key: RouteKey, ms?: number) {
  await kernelWhen(
    lab,
    host,
    `${key.to} absent`,
    (rs) =>
      findRoute(
        rs.filter((r) => r.protocol === ROUTE_PROTO),
        key,
      ) === undefined,
    ms,
  );
}

/** ISO timestamp `ms` from now. */
export const inMs = (ms: number) => new Date(Date.now() + ms).toISOString();

/** Rows of `table` matching `where`. */
export async function countRows(
  knex: Knex,
  table: string,
  where: Record<string, unknown> = {},
): Promise<number> {
  const rows = (await knex(table).where(where).count({ n: '*' })) as { n: number | string }[];
  return Number(rows[0]!.n);
}

/** The route's row as stored. */
export async function routeRow(knex: Knex, id: string) {
  const [row] = await knex('routes').where({ id });
  return row;
}

/** The route's audit trail as [action, from, to], oldest first. */
export async function eventTrail(
  knex: Knex,
  id: string,
): Promise<[string, string | null, string][]> {
  const rows = await knex('route_events').where({ route_id: id }).orderBy('id');
  return rows.map((e) => [e.action, e.from_status, e.to_status]);
}

/** POSTs one route and expects 201: the created route's body. */
export async function createRoute(
  server: Pick<TestServer, 'request'>,
  body: Record<string, unknown>,
): Promise<{ id: string } & Record<string, unknown>> {
  const res = await server.request('POST', '/v1/routes', { body });
  expect(res.status, res.text).toBe(201);
  return res.body;
}
