import type { Request, RequestHandler, Response, Router } from 'express';
import type { z } from 'zod';
import { accessOf, type Access } from './access.js';
import { badRequest, ProblemError, validationProblem, type ProblemStatus } from './problem.js';

/**
 * One endpoint of the API, declared once: the router mounts it (validating the body and the
 * query with its zod schemas) and the OpenAPI document describes it from the same declaration.
 */
export interface RouteDef<B extends z.ZodType | undefined = z.ZodType | undefined, Q extends z.ZodType | undefined = z.ZodType | undefined> {
  method: 'get' | 'post' | 'patch' | 'delete';
  /** OpenAPI-style path below /api/v1, e.g. `/tenants/{tenantId}`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  /** Default true: a bearer token is required. */
  auth?: boolean;
  /** Path parameters, for the document (malformed ids answer 404 like unknown ones). */
  params?: z.ZodObject;
  query?: Q;
  body?: B;
  /** The body may be left out entirely; it is then validated as `{}` (every field takes its default). */
  bodyOptional?: boolean;
  success: {
    status: 200 | 201;
    description: string;
    schema: z.ZodType;
    location?: boolean;
    /** The handler may answer text/plain instead (RouteReply.text); this describes that form. */
    text?: string;
  };
  /** Problem answers beyond those every route can give (400, 401, 403, 404, 415, 500). */
  problems?: ProblemStatus[];
  handler: (ctx: RouteContext<B, Q>) => Promise<RouteReply>;
}

export interface RouteContext<B, Q> {
  req: Request;
  res: Response;
  params: Record<string, string>;
  body: B extends z.ZodType ? z.output<B> : undefined;
  query: Q extends z.ZodType ? z.output<Q> : undefined;
  /** The caller's access (authenticated routes only). */
  readonly access: Access;
}

export interface RouteReply {
  body: unknown;
  /** For 201: the created resource's path (Location, RFC 9110 §10.2.2). */
  location?: string;
  /** Answer this text/plain body instead of `body` as JSON (routes with `success.text`). */
  text?: string;
}

export function defineRoute<B extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined>(def: RouteDef<B, Q>): RouteDef {
  return def as unknown as RouteDef;
}

export const apiPrefix = '/api/v1';

const jsonTypes = ['application/json', 'application/*+json'];

function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

function parseBody(def: RouteDef, req: Request): unknown {
  if (!def.body) return undefined;
  if (!hasBody(req) && def.bodyOptional) return def.body.parse({});
  if (!hasBody(req)) throw badRequest('a request body is required: a JSON object sent with Content-Type: application/json');
  if (!req.is(jsonTypes)) throw new ProblemError(415, `Content-Type must be application/json, not ${req.headers['content-type'] ?? '(none)'}`);
  const parsed = def.body.safeParse(req.body);
  if (!parsed.success) throw validationProblem(parsed.error, 'body');
  return parsed.data;
}

function parseQuery(def: RouteDef, req: Request): unknown {
  if (!def.query) return undefined;
  const parsed = def.query.safeParse({ ...req.query });
  if (!parsed.success) throw validationProblem(parsed.error, 'query');
  return parsed.data;
}

export function mountRoutes(router: Router, defs: RouteDef[], authenticate: RequestHandler): void {
  for (const def of defs) {
    const path = apiPrefix + def.path.replace(/\{(\w+)\}/g, ':$1');
    const handler: RequestHandler = async (req, res) => {
      const body = parseBody(def, req);
      const query = parseQuery(def, req);
      const ctx: RouteContext<z.ZodType, z.ZodType> = {
        req,
        res,
        params: req.params as Record<string, string>,
        body,
        query,
        get access() {
          return accessOf(res);
        },
      };
      const reply = await def.handler(ctx as never);
      if (reply.location) res.setHeader('Location', reply.location);
      if (reply.text !== undefined) res.status(def.success.status).type('text/plain; charset=utf-8').send(reply.text);
      else res.status(def.success.status).json(reply.body);
    };
    if (def.auth === false) router[def.method](path, handler);
    else router[def.method](path, authenticate, handler);
  }
}
