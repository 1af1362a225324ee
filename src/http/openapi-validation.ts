import { createRequire } from 'node:module';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { OpenApiContext } from 'express-openapi-validator/dist/framework/openapi.context.js';
import { OpenApiSpecLoader } from 'express-openapi-validator/dist/framework/openapi.spec.loader.js';
import {
  BadRequest,
  MethodNotAllowed,
  NotFound,
  UnsupportedMediaType,
  type OpenAPIV3,
  type OpenApiValidatorOpts,
  type SecurityHandlers,
} from 'express-openapi-validator/dist/framework/types.js';
import { SchemaPreprocessor } from 'express-openapi-validator/dist/middlewares/parsers/schema.preprocessor.js';
import { OpenApiValidator } from 'express-openapi-validator/dist/openapi.validator.js';

// The validator's own path-to-regexp, so a route compiles here exactly as it would there.
const validatorRequire = createRequire(
  createRequire(import.meta.url).resolve('express-openapi-validator'),
);
const { pathToRegexp } = validatorRequire('path-to-regexp') as {
  pathToRegexp(
    path: string,
    opts: { sensitive: boolean; strict: boolean },
  ): { regexp: RegExp; keys: { name: string }[] };
};

type Stage = (req: Request, res: Response, next: NextFunction) => unknown;
type Operation = OpenAPIV3.OperationObject & Record<string, unknown>;

/** The parts of the library's validator used here; they are private in its typings. */
interface ValidatorInternals {
  options: OpenApiValidatorOpts & {
    validateSecurity?: false | { handlers?: SecurityHandlers };
    validateRequests?: unknown;
    validateResponses?: unknown;
    fileUploader?: unknown;
    ignorePaths?: RegExp | ((path: string) => boolean);
    ignoreUndocumented?: boolean;
    useRequestUrl?: boolean;
  };
  ajvOpts: { preprocessor: unknown };
  installPathParams(app: unknown, context: OpenApiContext): void;
  securityMiddleware(apiDoc: OpenAPIV3.DocumentV3): Stage;
  multipartMiddleware(apiDoc: OpenAPIV3.DocumentV3): Stage;
  requestValidationMiddleware(apiDoc: OpenAPIV3.DocumentV3): Stage;
  responseValidationMiddleware(apiDoc: unknown, serial: number): Stage;
}

/** Distinct (method, path) answers the matcher keeps; past this it starts over. */
const MATCH_CACHE_MAX = 1_000;

interface CompiledRoute {
  expressRoute: string;
  openApiRoute: string;
  pathKey: string;
  /** Compiled per (case sensitive, strict) routing setting, which the app may change. */
  regexps: Map<string, { regexp: RegExp; keys: string[] }>;
}

export interface OperationMatch {
  schema: Operation | undefined;
  expressRoute: string;
  openApiRoute: string;
  pathParams: Record<string, string>;
  responseSchema: unknown;
}

/**
 * The contract's routes compiled once. express-openapi-validator's metadata middleware
 * compiles every route of the contract with path-to-regexp on every request before it finds
 * the one that matches: on a cached read that was about a tenth of the request's CPU. This
 * matches in the same order, with the same options and the same results.
 */
export class OperationMatcher {
  private readonly routes: CompiledRoute[];
  private readonly seen = new Map<string, OperationMatch | null>();
  readonly validatesResponses: boolean;

  constructor(
    private readonly context: OpenApiContext,
    private readonly responseApiDoc: OpenAPIV3.DocumentV3 | null,
  ) {
    this.validatesResponses = responseApiDoc !== null;
    this.routes = Object.entries(context.expressRouteMap).map(([expressRoute, methods]) => {
      const openApiRoute = context.routePair(expressRoute)!.openApiRoute;
      const basePath = (methods as { basePath: string }).basePath;
      return {
        expressRoute,
        openApiRoute,
        pathKey: openApiRoute.substring(basePath.length),
        regexps: new Map(),
      };
    });
  }

  /**
   * `reportedPath` names the request in a malformed-escape error, as the library does. The
   * answer for a path seen before comes from a bounded cache (with its own copy of the path
   * parameters): dashboards read the same few URLs over and over, and the scan runs a regexp
   * per route of the contract until one matches.
   */
  match(
    path: string,
    method: string,
    sensitive = false,
    strict = false,
    reportedPath = path,
  ): OperationMatch | null {
    const key = `${method} ${sensitive ? 's' : ''}${strict ? 't' : ''} ${path}`;
    const seen = this.seen.get(key);
    if (seen !== undefined) return seen && { ...seen, pathParams: { ...seen.pathParams } };
    const found = this.scan(path, method, sensitive, strict, reportedPath);
    if (this.seen.size >= MATCH_CACHE_MAX) this.seen.clear();
    this.seen.set(key, found && { ...found, pathParams: { ...found.pathParams } });
    return found;
  }

  private scan(
    path: string,
    method: string,
    sensitive: boolean,
    strict: boolean,
    reportedPath: string,
  ): OperationMatch | null {
    const m = method.toLowerCase();
    const option = `${sensitive ? 's' : ''}${strict ? 't' : ''}`;
    for (const route of this.routes) {
      let compiled = route.regexps.get(option);
      if (!compiled) {
        const r = pathToRegexp(route.expressRoute, { sensitive, strict });
        compiled = { regexp: r.regexp, keys: r.keys.map((k) => k.name) };
        route.regexps.set(option, compiled);
      }
      const found = compiled.regexp.exec(path);
      if (!found) continue;
      const pathParams: Record<string, string> = {};
      try {
        for (let i = 0; i < compiled.keys.length; i++) {
          pathParams[compiled.keys[i]!] = decodeURIComponent(found[i + 1] as string);
        }
      } catch {
        throw new BadRequest({ path: reportedPath, message: `malformed uri'` });
      }
      const item = (this.context.apiDoc.paths as Record<string, Record<string, Operation>>)[
        route.pathKey
      ]!;
      const responseItem = this.responseApiDoc?.paths[route.pathKey] as
        Record<string, unknown> | undefined;
      return {
        schema: item[m],
        expressRoute: route.expressRoute,
        openApiRoute: route.openApiRoute,
        pathParams,
        responseSchema: responseItem?.[m],
      };
    }
    return null;
  }

  /** The operationId of a path and method, or null; never throws (it names metrics). */
  operationId(path: string, method: string): string | null {
    try {
      return this.match(path, method)?.schema?.operationId ?? null;
    } catch {
      return null;
    }
  }
}

/** applyOpenApiMetadata of the library, on the compiled routes. */
function metadataStage(context: OpenApiContext, matcher: OperationMatcher): Stage {
  return (req, _res, next) => {
    const reqPath = req.path;
    const path = reqPath.startsWith(req.baseUrl) ? reqPath : `${req.baseUrl}/${reqPath}`;
    if (context.shouldIgnoreRoute(path)) return next();
    const url = context.useRequestUrl ? req.url : req.originalUrl;
    const q = url.indexOf('?');
    const matched = matcher.match(
      q === -1 ? url : url.slice(0, q),
      req.method,
      !!req.app.enabled('case sensitive routing'),
      !!req.app.enabled('strict routing'),
      reqPath,
    );
    if (matched) {
      const { expressRoute, openApiRoute, pathParams, schema } = matched;
      if (!schema) {
        if (context.ignoreUndocumented) return next();
        throw new MethodNotAllowed({
          path: req.path,
          message: `${req.method} method not allowed`,
          headers: {
            Allow: Object.keys((context.openApiRouteMap as Record<string, object>)[openApiRoute]!)
              .filter((key) => HTTP_METHODS.has(key.toLowerCase()))
              .join(', '),
          },
        });
      }
      const openapi: Record<string, unknown> = {
        expressRoute,
        openApiRoute,
        pathParams,
        schema,
        serial: context.serial,
      };
      (req as Request & { openapi: unknown }).openapi = openapi;
      req.params = pathParams;
      if (matcher.validatesResponses) openapi._responseSchema = matched.responseSchema;
    } else if (context.isManagedRoute(path) && !context.ignoreUndocumented) {
      throw new NotFound({ path: req.path, message: 'not found' });
    }
    next();
  };
}

const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

/**
 * The library's security middleware builds a scheme evaluator, several promises and closures
 * per request. For an operation whose only requirement is one HTTP bearer scheme (every
 * protected operation of the contract), this calls the handler directly; anything else, and
 * every failure, goes to the library's middleware, so errors read exactly as before.
 */
function securityStage(
  apiDoc: OpenAPIV3.DocumentV3,
  handlers: SecurityHandlers | undefined,
  library: Stage,
): Stage {
  const schemes = (apiDoc.components?.securitySchemes ?? {}) as Record<
    string,
    { type?: string; scheme?: string; in?: string }
  >;
  const plans = new WeakMap<object, ((req: Request) => boolean) | null>();
  const planFor = (schema: Operation) => {
    let plan = plans.get(schema);
    if (plan !== undefined) return plan;
    plan = null;
    const securities = schema.security ?? apiDoc.security;
    if (Array.isArray(securities) && securities.length === 1) {
      const keys = Object.keys(securities[0]!);
      const key = keys[0];
      const scheme = key === undefined ? undefined : schemes[key];
      const handler = key === undefined ? undefined : handlers?.[key];
      if (
        keys.length === 1 &&
        handler &&
        scheme?.type?.toLowerCase() === 'http' &&
        scheme.scheme?.toLowerCase() === 'bearer' &&
        scheme.in !== 'cookie'
      ) {
        const scopes = securities[0]![key!];
        const scopeList = Array.isArray(scopes) ? scopes : [];
        plan = (req) => {
          const header = req.headers.authorization;
          if (!header || !header.toLowerCase().includes('bearer')) return false;
          try {
            return handler(req, scopeList, scheme as never) === true;
          } catch {
            return false;
          }
        };
      }
    }
    plans.set(schema, plan);
    return plan;
  };
  return (req, res, next) => {
    const openapi = (req as Request & { openapi?: { schema?: Operation; openApiRoute?: string } })
      .openapi;
    const schema = openapi?.schema;
    if (!schema || !openapi.openApiRoute) return library(req, res, next);
    const plan = planFor(schema);
    if (plan && plan(req)) return next();
    return library(req, res, next);
  };
}

const PARAMETER_REF = '#/components/parameters/';

/**
 * The library compiles and keeps a request validator per (method, route, content type) the
 * first time it sees one, and compiles the content type into a JSON-schema URI: any content
 * type a client sends became a new validator held forever, and `content-type: %` a 500 (Ajv
 * refuses the malformed URI). A request without a body has no content, so its header is
 * dropped; a body of a media type no operation of the contract accepts is a 415 here.
 */
function mediaTypeGuard(apiDoc: OpenAPIV3.DocumentV3): Stage {
  const declared = new Set<string>();
  for (const item of Object.values(apiDoc.paths ?? {})) {
    for (const op of Object.values(item ?? {})) {
      const content = (op as { requestBody?: { content?: object } } | undefined)?.requestBody
        ?.content;
      for (const media of Object.keys(content ?? {})) declared.add(media.toLowerCase());
    }
  }
  return (req, _res, next) => {
    const type = req.headers['content-type'];
    if (type === undefined) return next();
    const h = req.headers;
    const hasBody =
      h['transfer-encoding'] !== undefined || !isNaN(h['content-length'] as unknown as number);
    if (!hasBody) {
      delete req.headers['content-type'];
      return next();
    }
    const media = type.split(';')[0]!.trim().toLowerCase();
    if (declared.has(media)) return next();
    next(new UnsupportedMediaType({ path: req.path, message: `unsupported media type ${media}` }));
  };
}

/** Distinct read URLs whose validated query is kept; past this the cache starts over. */
const READ_CACHE_MAX = 1_000;

type QueryValue = string | string[] | number | boolean | undefined;

/** A copy the next request may change freely: values are scalars or arrays of them. */
function copyQuery(query: Record<string, unknown>): Record<string, QueryValue> {
  const out: Record<string, QueryValue> = {};
  for (const [k, v] of Object.entries(query))
    out[k] = Array.isArray(v) ? [...v] : (v as QueryValue);
  return out;
}

/**
 * The library's request validation of a read depends only on its method and URL when the
 * operation declares no header or cookie parameters and there is no body: it parses the URL,
 * builds a parameter mutator, coerces the query and runs ajv over it, the same way every
 * time. A read that passed once is passed again with the query it produced (a copy); every
 * other request, and every failure, goes through the library. Authentication is not part of
 * this: the security stage runs before, on every request.
 */
export function readValidationCache(apiDoc: OpenAPIV3.DocumentV3, library: Stage): Stage {
  const passed = new Map<string, Record<string, QueryValue>>();
  const cacheable = new WeakMap<object, boolean>();
  const isCacheable = (schema: Operation) => {
    let ok = cacheable.get(schema);
    if (ok === undefined) {
      const declared = (apiDoc.components?.parameters ?? {}) as Record<string, { in?: string }>;
      ok = !(schema.parameters ?? []).some((p) => {
        const ref = (p as { $ref?: string }).$ref;
        const param = ref?.startsWith(PARAMETER_REF)
          ? declared[ref.slice(PARAMETER_REF.length)]
          : (p as { in?: string });
        const where = param?.in;
        return where === undefined || where === 'header' || where === 'cookie';
      });
      cacheable.set(schema, ok);
    }
    return ok;
  };
  return (req, res, next) => {
    const schema = (req as Request & { openapi?: { schema?: Operation } }).openapi?.schema;
    if (
      (req.method !== 'GET' && req.method !== 'HEAD') ||
      req.body !== undefined ||
      !schema ||
      !isCacheable(schema)
    ) {
      return library(req, res, next);
    }
    const key = `${req.method} ${req.originalUrl}`;
    const query = passed.get(key);
    if (query) {
      // As the library leaves it: an own, writable query (Express 5 has a getter).
      Object.defineProperty(req, 'query', {
        value: copyQuery(query),
        writable: true,
        configurable: true,
        enumerable: true,
      });
      return next();
    }
    return library(req, res, (err?: unknown) => {
      if (!err) {
        if (passed.size >= READ_CACHE_MAX) passed.clear();
        passed.set(key, copyQuery(req.query as Record<string, unknown>));
      }
      next(err);
    });
  };
}

/**
 * express-openapi-validator's middleware with its per-request work done once: the same
 * library stages (spec loading, security, multipart, request and response validation) in the
 * same order, run as one middleware instead of six that each wait on the loaded spec, with
 * the route lookup compiled once (OperationMatcher) and bearer security called directly.
 */
export function openApiValidation(options: OpenApiValidatorOpts): {
  middleware: RequestHandler;
  /** Resolves once the contract is loaded; null if it could not be. */
  matcher: () => OperationMatcher | null;
} {
  const oav = new OpenApiValidator(options) as unknown as ValidatorInternals;
  const opts = oav.options;
  let matcher: OperationMatcher | null = null;
  const loaded = new OpenApiSpecLoader({
    apiDoc: structuredClone(options.apiSpec) as OpenAPIV3.DocumentV3,
    validateApiSpec: options.validateApiSpec,
    $refParser: options.$refParser,
  } as never)
    .load()
    .then((spec) => {
      const apiDoc = spec.apiDoc as OpenAPIV3.DocumentV3;
      const sp = new SchemaPreprocessor(
        apiDoc,
        oav.ajvOpts.preprocessor as never,
        opts.validateResponses as never,
      ).preProcess();
      const context = new OpenApiContext(
        spec,
        opts.ignorePaths as RegExp,
        opts.ignoreUndocumented,
        opts.useRequestUrl,
      );
      const responseApiDoc = (sp.apiDocRes ?? null) as OpenAPIV3.DocumentV3 | null;
      matcher = new OperationMatcher(context, responseApiDoc);
      const doc = context.apiDoc as OpenAPIV3.DocumentV3;
      const stages: Stage[] = [metadataStage(context, matcher)];
      if (opts.validateSecurity && doc.components?.securitySchemes) {
        stages.push(
          securityStage(doc, opts.validateSecurity.handlers, oav.securityMiddleware(doc)),
        );
      }
      // A contract without multipart bodies gives that stage nothing to do on any request.
      if (opts.fileUploader && JSON.stringify(doc).includes('multipart/')) {
        stages.push(oav.multipartMiddleware(doc));
      }
      if (opts.validateRequests) {
        stages.push(mediaTypeGuard(doc));
        stages.push(readValidationCache(doc, oav.requestValidationMiddleware(doc)));
      }
      if (opts.validateResponses) {
        stages.push(oav.responseValidationMiddleware(responseApiDoc, context.serial));
      }
      return { context, stages, error: null };
    })
    .catch((error: unknown) => ({ context: null, stages: [] as Stage[], error }));

  let ready: Awaited<typeof loaded> | null = null;
  void loaded.then((r) => (ready = r));
  let pathParamsInstalled = false;

  const run = (
    state: Awaited<typeof loaded>,
    req: Request,
    res: Response,
    next: NextFunction,
  ): void => {
    if (state.error) return next(state.error);
    if (!pathParamsInstalled) {
      oav.installPathParams(req.app, state.context!);
      pathParamsInstalled = true;
    }
    const { stages } = state;
    let i = 0;
    const step = (err?: unknown): void => {
      if (err) return next(err);
      const stage = stages[i++];
      if (!stage) return next();
      try {
        const p = stage(req, res, step);
        // The library's async stages report their failures through a rejection.
        if (p instanceof Promise) p.catch(next);
      } catch (e) {
        next(e);
      }
    };
    step();
  };

  return {
    middleware: (req, res, next) => {
      if (ready) return run(ready, req, res, next);
      loaded.then((state) => run(state, req, res, next)).catch(next);
    },
    matcher: () => matcher,
  };
}
