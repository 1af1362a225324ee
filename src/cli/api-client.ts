import type { components, operations } from '../http/api-types.ts';

type Schemas = components['schemas'];
export type Route = Schemas['Route'];
export type RouteCreate = Schemas['RouteCreate'];
export type HealthCheck = Schemas['HealthCheck'];
export type RouteList = Schemas['RouteList'];
export type RouteBatchResult = Schemas['RouteBatchResult'];
export type Problem = Schemas['Problem'];
export type FieldError = NonNullable<Problem['errors']>[number];
export type HostList = Schemas['HostList'];
export type HostDetail = Schemas['HostDetail'];
export type Run = Schemas['Run'];
export type RunList = Schemas['RunList'];
export type PlaybookList = Schemas['PlaybookList'];
export type FirewallRule = Schemas['FirewallRule'];
export type FirewallRuleInput = Schemas['FirewallRuleInput'];
export type FirewallRuleList = Schemas['FirewallRuleList'];
export type FirewallRuleBatchResult = Schemas['FirewallRuleBatchResult'];
export type FirewallRuleEvent = Schemas['FirewallRuleEvent'];
export type HostFirewallRelease = Schemas['HostFirewallRelease'];
export type RouteOpening = Schemas['RouteOpening'];
export type FirewallSet = Schemas['FirewallSet'];
export type FirewallSetWriteResult = Schemas['FirewallSetWriteResult'];
export type FirewallSetApplyHost = FirewallSetWriteResult['apply']['hosts'][number];
export type FirewallSetEvent = Schemas['FirewallSetEvent'];
/** A set to create: `elements` has a default (none) in the contract. */
export type FirewallSetCreate = Omit<Schemas['FirewallSetInput'], 'elements'> &
  Partial<Pick<Schemas['FirewallSetInput'], 'elements'>>;

/** Fields with a default in the contract, which makes them required in its types. */
type FirewallDefaulted = 'family' | 'protocol' | 'src' | 'dst' | 'sport' | 'dport' | 'priority';
/** A rule to create: fields left out take the server's defaults. */
export type FirewallRuleCreate = Omit<FirewallRuleInput, FirewallDefaulted> &
  Partial<Pick<FirewallRuleInput, FirewallDefaulted>>;

type QueryOf<Op extends keyof operations> = NonNullable<operations[Op]['parameters']['query']>;
export type ListRoutesQuery = QueryOf<'listRoutes'>;
export type RouteHistoryQuery = QueryOf<'listRouteHistory'>;
export type ListRunsQuery = QueryOf<'listRuns'>;
export type ListFirewallRulesQuery = QueryOf<'listFirewallRules'>;
export type ListFirewallSetsQuery = QueryOf<'listFirewallSets'>;

export function isBatch(value: Route | RouteBatchResult): value is RouteBatchResult {
  return 'items' in value;
}

export function isFirewallBatch(
  value: FirewallRule | FirewallRuleBatchResult,
): value is FirewallRuleBatchResult {
  return 'items' in value;
}

export const DEFAULT_API_URL = 'http://127.0.0.1:8080';

/** The API answered with an error: its status, the problem's detail and, for a 400, each field. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly problem: Problem | null,
  ) {
    super(detail);
  }
  get fields(): FieldError[] {
    return this.problem?.errors ?? [];
  }
}

/** No HTTP answer at all: nothing listening, unknown host, a timeout. */
export class ApiUnreachableError extends Error {
  constructor(
    readonly url: string,
    reason: string,
  ) {
    super(`cannot reach the routeplane API at ${url}: ${reason}`);
  }
}

/** A write's answer: 202 means the apply run carrying it was still going when `wait` ran out. */
export interface Written<T> {
  status: number;
  body: T;
  location: string | null;
}

export interface ApiClientOptions {
  baseUrl: string;
  token?: string;
  /** For tests; the global fetch otherwise. */
  fetch?: typeof fetch;
}

/** A list is sent as the parameter repeated (`element=a&element=b`), each value encoded. */
type QueryValue = string | number | boolean | undefined | readonly string[];

const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is the server running? set --api or ROUTEPLANE_API)',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ECONNRESET: 'the connection was reset',
  EHOSTUNREACH: 'host unreachable',
  ETIMEDOUT: 'connection timed out',
  // undici gives up on a response whose headers take over 300 s (a long --wait)
  UND_ERR_HEADERS_TIMEOUT: 'no answer within 300 s',
};

function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code;
  if (code && NETWORK_REASONS[code]) return NETWORK_REASONS[code];
  return cause?.message ?? (err instanceof Error ? err.message : String(err));
}

function isProblem(value: unknown): value is Problem {
  return (
    typeof value === 'object' && value !== null && typeof (value as Problem).status === 'number'
  );
}

/** Kong and other proxies answer errors with `{ message }` rather than a problem. */
function errorDetail(status: number, statusText: string, text: string, body: unknown): string {
  if (isProblem(body)) return body.detail ?? body.title;
  const message = (body as { message?: unknown } | null)?.message;
  if (typeof message === 'string') return message;
  const firstLine = text.trim().split('\n')[0]?.slice(0, 200);
  return firstLine ? `HTTP ${status}: ${firstLine}` : `HTTP ${status} ${statusText}`.trim();
}

/** A thin, typed client of the /v1 operations the CLI uses; every error becomes an ApiError. */
export class ApiClient {
  readonly baseUrl: string;
  private readonly token: string | undefined;
  private readonly fetch: typeof fetch;

  constructor(opts: ApiClientOptions) {
    let url: URL;
    try {
      url = new URL(opts.baseUrl);
    } catch {
      throw new Error(`--api: not a URL: ${opts.baseUrl}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new Error(`--api: needs an http or https URL, got ${opts.baseUrl}`);
    }
    // A base path (behind a gateway) is kept; only the trailing slash goes.
    this.baseUrl = url.href.replace(/\/+$/, '');
    this.token = opts.token || undefined;
    this.fetch = opts.fetch ?? fetch;
  }

  private async request<T>(
    method: string,
    path: string,
    opts: { query?: Record<string, QueryValue>; body?: unknown } = {},
  ): Promise<Written<T>> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (Array.isArray(v)) for (const item of v) params.append(k, item);
      else if (v !== undefined) params.set(k, String(v));
    }
    const qs = params.toString() ? `?${params}` : '';
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';

    let res: Response;
    try {
      res = await this.fetch(`${this.baseUrl}${path}${qs}`, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      });
    } catch (err) {
      throw new ApiUnreachableError(this.baseUrl, networkReason(err));
    }
    const text = await res.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!res.ok) {
      let detail = errorDetail(res.status, res.statusText, text, body);
      if (res.status === 401 && !this.token) detail += ' (set --token or ROUTEPLANE_TOKEN)';
      throw new ApiError(res.status, detail, isProblem(body) ? body : null);
    }
    if (body === null) {
      throw new ApiError(res.status, `HTTP ${res.status}: the answer is not JSON`, null);
    }
    return { status: res.status, body: body as T, location: res.headers.get('location') };
  }

  private async get<T>(path: string, query?: Record<string, QueryValue>): Promise<T> {
    return (await this.request<T>('GET', path, { query })).body;
  }

  /**
   * One route, or one per member when `host` names a group (then a batch result). The answer
   * is 201 (created), 200 (an identical route already existed, or with `replace` one that
   * now has the new forwarding) or 202 (recorded, still applying). `replace` is PUT: a route
   * with the same identity and a different gateway or device moves instead of being a 409.
   */
  createRoute(
    body: RouteCreate,
    opts: { wait?: number; replace?: boolean } = {},
  ): Promise<Written<Route | RouteBatchResult>> {
    return this.request<Route | RouteBatchResult>(opts.replace ? 'PUT' : 'POST', '/v1/routes', {
      query: { wait: opts.wait },
      body,
    });
  }

  getRoute(id: string): Promise<Route> {
    return this.get<Route>(`/v1/routes/${encodeURIComponent(id)}`);
  }

  deleteRoute(id: string, wait?: number): Promise<Written<Route>> {
    return this.request<Route>('DELETE', `/v1/routes/${encodeURIComponent(id)}`, {
      query: { wait },
    });
  }

  pauseRoute(id: string, wait?: number): Promise<Written<Route>> {
    return this.request<Route>('POST', `/v1/routes/${encodeURIComponent(id)}/pause`, {
      query: { wait },
    });
  }

  resumeRoute(id: string, wait?: number): Promise<Written<Route>> {
    return this.request<Route>('POST', `/v1/routes/${encodeURIComponent(id)}/resume`, {
      query: { wait },
    });
  }

  listRoutes(query: ListRoutesQuery = {}): Promise<RouteList> {
    return this.get<RouteList>('/v1/routes', query);
  }

  listRouteHistory(query: RouteHistoryQuery = {}): Promise<RouteList> {
    return this.get<RouteList>('/v1/routes/history', query);
  }

  /**
   * One rule, or a batch (then a batch result). The answer is 201 (created), 200 (an identical
   * live rule already existed; for a batch, every item did) or 202 (recorded, still applying).
   */
  createFirewallRules(
    body: FirewallRuleCreate | FirewallRuleCreate[],
    wait?: number,
  ): Promise<Written<FirewallRule | FirewallRuleBatchResult>> {
    return this.request<FirewallRule | FirewallRuleBatchResult>('POST', '/v1/firewall/rules', {
      query: { wait },
      body,
    });
  }

  getFirewallRule(id: string): Promise<FirewallRule> {
    return this.get<FirewallRule>(`/v1/firewall/rules/${encodeURIComponent(id)}`);
  }

  deleteFirewallRule(id: string, wait?: number): Promise<Written<FirewallRule>> {
    return this.request<FirewallRule>('DELETE', `/v1/firewall/rules/${encodeURIComponent(id)}`, {
      query: { wait },
    });
  }

  pauseFirewallRule(id: string, wait?: number): Promise<Written<FirewallRule>> {
    return this.request<FirewallRule>(
      'POST',
      `/v1/firewall/rules/${encodeURIComponent(id)}/pause`,
      { query: { wait } },
    );
  }

  resumeFirewallRule(id: string, wait?: number): Promise<Written<FirewallRule>> {
    return this.request<FirewallRule>(
      'POST',
      `/v1/firewall/rules/${encodeURIComponent(id)}/resume`,
      { query: { wait } },
    );
  }

  listFirewallRules(query: ListFirewallRulesQuery = {}): Promise<FirewallRuleList> {
    return this.get<FirewallRuleList>('/v1/firewall/rules', query);
  }

  listFirewallRuleEvents(id: string): Promise<{ items: FirewallRuleEvent[] }> {
    return this.get<{ items: FirewallRuleEvent[] }>(
      `/v1/firewall/rules/${encodeURIComponent(id)}/events`,
    );
  }

  listFirewallSets(query: ListFirewallSetsQuery = {}): Promise<{ items: FirewallSet[] }> {
    return this.get<{ items: FirewallSet[] }>('/v1/firewall/sets', query);
  }

  /** 201 with each managed member's apply outcome, or 202 while the run carrying it goes on. */
  createFirewallSet(
    body: FirewallSetCreate,
    wait?: number,
  ): Promise<Written<FirewallSetWriteResult>> {
    return this.request<FirewallSetWriteResult>('POST', '/v1/firewall/sets', {
      query: { wait },
      body,
    });
  }

  getFirewallSet(id: string): Promise<FirewallSet> {
    return this.get<FirewallSet>(`/v1/firewall/sets/${encodeURIComponent(id)}`);
  }

  deleteFirewallSet(id: string, wait?: number): Promise<Written<FirewallSetWriteResult>> {
    return this.request<FirewallSetWriteResult>(
      'DELETE',
      `/v1/firewall/sets/${encodeURIComponent(id)}`,
      { query: { wait } },
    );
  }

  addFirewallSetElements(
    id: string,
    elements: string[],
    wait?: number,
  ): Promise<Written<FirewallSetWriteResult>> {
    return this.request<FirewallSetWriteResult>(
      'POST',
      `/v1/firewall/sets/${encodeURIComponent(id)}/elements`,
      { query: { wait }, body: { elements } },
    );
  }

  /** DELETE with `element` repeated in the query, one per element. */
  removeFirewallSetElements(
    id: string,
    elements: string[],
    wait?: number,
  ): Promise<Written<FirewallSetWriteResult>> {
    return this.request<FirewallSetWriteResult>(
      'DELETE',
      `/v1/firewall/sets/${encodeURIComponent(id)}/elements`,
      { query: { wait, element: elements } },
    );
  }

  listFirewallSetEvents(id: string): Promise<{ items: FirewallSetEvent[] }> {
    return this.get<{ items: FirewallSetEvent[] }>(
      `/v1/firewall/sets/${encodeURIComponent(id)}/events`,
    );
  }

  /** Removes routeplane's table from the host; 202 while the run removing it is still going. */
  releaseHostFirewall(host: string, wait?: number): Promise<Written<HostFirewallRelease>> {
    return this.request<HostFirewallRelease>(
      'DELETE',
      `/v1/hosts/${encodeURIComponent(host)}/firewall`,
      { query: { wait } },
    );
  }

  listHosts(): Promise<HostList> {
    return this.get<HostList>('/v1/hosts');
  }

  getHost(name: string, refresh = false): Promise<HostDetail> {
    return this.get<HostDetail>(`/v1/hosts/${encodeURIComponent(name)}`, {
      refresh: refresh || undefined,
    });
  }

  listPlaybooks(): Promise<PlaybookList> {
    return this.get<PlaybookList>('/v1/playbooks');
  }

  listRuns(query: ListRunsQuery = {}): Promise<RunList> {
    return this.get<RunList>('/v1/runs', query);
  }

  getRun(id: string): Promise<Run> {
    return this.get<Run>(`/v1/runs/${encodeURIComponent(id)}`);
  }
}
