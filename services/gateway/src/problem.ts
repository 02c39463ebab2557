import type { NextFunction, Request, Response } from 'express';
import { ZodError, type z } from 'zod';
import { MoatError, type Logger } from '@moat/runtime';

/**
 * Errors as RFC 9457 problem details (`application/problem+json`): `type` identifies the kind of
 * problem, `detail` explains this occurrence in words a partner's script can log, `instance`
 * names the request. Field errors also come as `errors: [{ field, message }]`.
 */
export interface FieldError {
  field: string;
  message: string;
}

export const problemTypes = {
  400: { slug: 'invalid-request', title: 'Invalid request' },
  401: { slug: 'unauthenticated', title: 'Authentication required' },
  403: { slug: 'forbidden', title: 'Forbidden' },
  404: { slug: 'not-found', title: 'Not found' },
  409: { slug: 'conflict', title: 'Conflict' },
  413: { slug: 'payload-too-large', title: 'Request body too large' },
  415: { slug: 'unsupported-media-type', title: 'Unsupported media type' },
  429: { slug: 'too-many-requests', title: 'Too many requests' },
  500: { slug: 'internal-error', title: 'Internal error' },
  502: { slug: 'bad-gateway', title: 'Upstream failure' },
  503: { slug: 'unavailable', title: 'Service unavailable' },
} as const;
export type ProblemStatus = keyof typeof problemTypes;

export function problemType(status: ProblemStatus): string {
  return `urn:moat:problem:${problemTypes[status].slug}`;
}

export class ProblemError extends Error {
  override readonly name = 'ProblemError';
  constructor(
    readonly status: ProblemStatus,
    readonly detail: string,
    readonly extra: { errors?: FieldError[]; headers?: Record<string, string> } = {},
  ) {
    super(detail);
  }
}

export const badRequest = (detail: string, errors?: FieldError[]) => new ProblemError(400, detail, errors ? { errors } : {});
export const forbidden = (detail: string) => new ProblemError(403, detail);
export const notFound = (detail: string) => new ProblemError(404, detail);
export const conflict = (detail: string) => new ProblemError(409, detail);
/** RFC 6585 §4: with Retry-After (RFC 9110 §10.2.3) in whole seconds, rounded up. */
export const tooManyRequests = (detail: string, retryAfterMs: number) => new ProblemError(429, detail, { headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) } });
/** RFC 6750 §3: a 401 names the scheme (and, for a token that did not verify, the error). */
export const unauthorized = (detail: string, invalidToken: boolean) =>
  new ProblemError(401, detail, { headers: { 'WWW-Authenticate': invalidToken ? 'Bearer realm="moat", error="invalid_token"' : 'Bearer realm="moat"' } });

/** Zod issues as field errors: `routes[0].port: Too big: expected number to be <=65535`. */
export function fieldErrors(error: ZodError, prefix = ''): FieldError[] {
  return error.issues.flatMap((issue: z.core.$ZodIssue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ field: fieldName([...issue.path, key], prefix), message: 'unknown field' }));
    }
    return [{ field: fieldName(issue.path, prefix), message: issue.message }];
  });
}

function fieldName(path: PropertyKey[], prefix: string): string {
  let out = prefix;
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : `${out ? '.' : ''}${String(part)}`;
  return out || '(body)';
}

export function validationProblem(error: ZodError, where: 'body' | 'query'): ProblemError {
  const errors = fieldErrors(error);
  const summary = errors.map((e) => `${e.field}: ${e.message}`).join('; ');
  return badRequest(`invalid ${where === 'query' ? 'query parameter' : 'request body'}: ${summary}`, errors);
}

export function sendProblem(res: Response, req: Request, status: ProblemStatus, detail: string, extra: ProblemError['extra'] = {}): void {
  if (extra.headers) for (const [k, v] of Object.entries(extra.headers)) res.setHeader(k, v);
  res
    .status(status)
    .type('application/problem+json')
    .send(
      JSON.stringify({
        type: problemType(status),
        title: problemTypes[status].title,
        status,
        detail,
        instance: req.originalUrl.split('?')[0],
        ...(extra.errors ? { errors: extra.errors } : {}),
        ...(res.locals.requestId ? { requestId: res.locals.requestId } : {}),
      }),
    );
}

const bodyParserProblems: Record<string, { status: ProblemStatus; detail: (err: { message: string; limit?: number }) => string }> = {
  'entity.parse.failed': { status: 400, detail: (e) => `request body is not valid JSON: ${e.message}` },
  'entity.too.large': { status: 413, detail: (e) => `request body exceeds ${e.limit ?? 'the limit of'} bytes` },
  'encoding.unsupported': { status: 415, detail: (e) => e.message },
  'charset.unsupported': { status: 415, detail: (e) => e.message },
  'entity.verify.failed': { status: 400, detail: (e) => e.message },
  'request.aborted': { status: 400, detail: () => 'request aborted by the client' },
};

const moatErrorStatus: Partial<Record<MoatError['code'], ProblemStatus>> = {
  NOT_FOUND: 404,
  CONFLICT: 409,
  VALIDATION_FAILED: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  DEPENDENCY_UNAVAILABLE: 503,
  PUBLISH_FAILED: 503,
  PUBLISH_NACKED: 503,
  PUBLISH_UNROUTABLE: 502,
};

/** The last middleware: every error becomes a problem; unknown ones are logged, never shown. */
export function problemHandler(log: Logger) {
  return (err: unknown, req: Request, res: Response, next: NextFunction): void => {
    if (res.headersSent) return next(err);
    if (err instanceof ProblemError) return sendProblem(res, req, err.status, err.detail, err.extra);
    if (err instanceof ZodError) {
      const p = validationProblem(err, 'body');
      return sendProblem(res, req, p.status, p.detail, p.extra);
    }
    const bodyError = err as { type?: unknown; message: string; limit?: number };
    const mapped = typeof bodyError?.type === 'string' ? bodyParserProblems[bodyError.type] : undefined;
    if (mapped) return sendProblem(res, req, mapped.status, mapped.detail(bodyError));
    if (err instanceof MoatError) {
      const status = moatErrorStatus[err.code];
      if (status && status < 500) return sendProblem(res, req, status, err.message);
      if (status) {
        log.warn({ err: err.message, code: err.code, requestId: res.locals.requestId }, 'request failed on a dependency');
        return sendProblem(res, req, status, status === 502 ? 'the broker could not route the message' : 'a dependency is unavailable; retry later');
      }
    }
    log.error({ err: err instanceof Error ? err.stack : String(err), requestId: res.locals.requestId, path: req.path }, 'request failed');
    sendProblem(res, req, 500, `an unexpected error occurred; quote request id ${String(res.locals.requestId)} to the operator`);
  };
}
