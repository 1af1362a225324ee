import { InvalidArgumentError, Option, type Command } from 'commander';
import { ApiClient, ApiError, ApiUnreachableError, DEFAULT_API_URL } from './api-client.ts';
import { formatJson } from './output.ts';

interface ApiOptions {
  api: string;
  token?: string;
  json?: boolean;
}

/** What an API command's body gets: the client, the output mode, and its own options. */
export interface ApiContext<O> {
  client: ApiClient;
  json: boolean;
  opts: O;
  out(text: string): void;
  /** A note for the person at the terminal, on stderr, never mixed into --json output. */
  note(text: string): void;
  /** Report a failure on stderr and exit 1, after whatever was printed. */
  fail(text: string): void;
}

/** --api, --token and --json, on every command that talks to the API. */
export function addApiOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--api <url>', 'routeplane API base URL')
        .env('ROUTEPLANE_API')
        .default(DEFAULT_API_URL),
    )
    .addOption(
      new Option('--token <token>', 'bearer token (prefer the env var: argv is visible to ps)').env(
        'ROUTEPLANE_TOKEN',
      ),
    )
    .option('--json', 'print the API answer as JSON');
}

export function intOption(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) {
      throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    }
    return n;
  };
}

/**
 * `/body/create_at` as the person typed it: `--create-at`, or `<to>` for a positional argument.
 * Fields the CLI cannot name (nested ones) stay as the API wrote them.
 */
export function fieldLabel(field: string, positionals: readonly string[]): string {
  const m = /^\/(?:body|query|params|path)\/([A-Za-z_]+)$/.exec(field);
  if (!m) return field;
  const name = m[1]!;
  return positionals.includes(name) ? `<${name}>` : `--${name.replace(/_/g, '-')}`;
}

/** Every failure of an API command, as one or more `routeplane: ...` lines. */
export function describeError(err: unknown, positionals: readonly string[] = []): string[] {
  if (err instanceof ApiError) {
    if (err.status === 400 && err.fields.length > 0) {
      return [
        'routeplane: the API rejected the request:',
        ...err.fields.map((f) => `  ${fieldLabel(f.field, positionals)}: ${f.message}`),
      ];
    }
    const lines = [`routeplane: ${err.detail}`];
    const p = err.problem;
    if (p && typeof p.route_id === 'string' && err.status === 502) {
      lines.push(
        `routeplane: route ${p.route_id} is recorded on ${p.host ?? '?'} and its apply is retried` +
          (p.run_id ? ` (run ${p.run_id})` : ''),
      );
    }
    if (p?.request_id && err.status >= 500) lines.push(`routeplane: request id ${p.request_id}`);
    return lines;
  }
  if (err instanceof ApiUnreachableError || err instanceof Error) {
    return [`routeplane: ${err.message}`];
  }
  return [`routeplane: ${String(err)}`];
}

/**
 * Runs an API command: builds the client from --api/--token, and turns every error into
 * `routeplane: ...` on stderr with exit code 1 (no stack: these are the API's answers, not bugs).
 */
export async function runApi<O extends object>(
  cmd: Command,
  body: (ctx: ApiContext<O>) => Promise<void>,
  how: {
    /** The command's arguments, so a 400 on `/body/to` reads as `<to>`. */
    positionals?: readonly string[];
    /** A next step for the person, printed after the error when it applies. */
    hint?: (err: unknown) => string | null;
  } = {},
): Promise<void> {
  const opts = cmd.opts<O & ApiOptions>();
  try {
    await body({
      client: new ApiClient({ baseUrl: opts.api, token: opts.token }),
      json: opts.json === true,
      opts,
      out: (text) => void process.stdout.write(text),
      note: (text) => void process.stderr.write(`routeplane: ${text}\n`),
      fail: (text) => {
        process.stderr.write(`routeplane: ${text}\n`);
        process.exitCode = 1;
      },
    });
  } catch (err) {
    const lines = describeError(err, how.positionals);
    const hint = how.hint?.(err);
    if (hint) lines.push(`routeplane: ${hint}`);
    process.stderr.write(`${lines.join('\n')}\n`);
    process.exitCode = 1;
  }
}

/** Print in the chosen mode: the API's JSON as is, or the human rendering. */
export function show<T>(ctx: ApiContext<unknown>, value: T, human: (v: T) => string): void {
  ctx.out(ctx.json ? formatJson(value) : human(value));
}
