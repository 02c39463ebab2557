import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import type { ResponseConfig } from '@asteasolutions/zod-to-openapi';
import { problemTypes, type ProblemStatus } from './problem.js';
import { apiPrefix, type RouteDef } from './route.js';
import { Health, Problem } from './schemas.js';

function problemResponse(status: ProblemStatus): ResponseConfig {
  const descriptions: Partial<Record<ProblemStatus, string>> = {
    400: 'Invalid request: `detail` and `errors` name each bad field',
    401: 'Missing or invalid bearer token (WWW-Authenticate: Bearer)',
    403: 'The key may not do this (role or scope)',
    404: 'No such resource, or not visible to this key',
    409: 'Conflicts with an existing resource',
    413: 'Request body too large',
    415: 'The body is not application/json',
    429: 'Rate limit reached: Retry-After says in how many seconds to try again',
    500: 'Unexpected error (logged with the request id)',
    502: 'The broker could not route the message',
    503: 'A dependency is unavailable; retry later',
  };
  return {
    description: descriptions[status] ?? problemTypes[status].title,
    ...(status === 429 ? { headers: { 'Retry-After': { description: 'Seconds until a new request may succeed', schema: { type: 'integer' } } } } : {}),
    content: { 'application/problem+json': { schema: Problem } },
  };
}

/** The OpenAPI 3.1 document, generated from the same declarations the router mounts. */
export function buildOpenApiDocument(routes: RouteDef[]): Record<string, unknown> {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API key: the operator token (MOAT_BOOTSTRAP_TOKEN), a partner key or a tenant key',
  });
  for (const path of ['/livez', '/readyz']) {
    registry.registerPath({
      method: 'get',
      path,
      operationId: path === '/livez' ? 'livez' : 'readyz',
      summary: path === '/livez' ? 'Liveness: 200 while the process runs' : 'Readiness: 200 while every dependency is reachable, 503 otherwise',
      tags: ['health'],
      security: [],
      responses: {
        200: { description: 'OK', content: { 'application/json': { schema: Health } } },
        ...(path === '/readyz' ? { 503: { description: 'Not ready', content: { 'application/json': { schema: Health } } } } : {}),
      },
    });
  }
  for (const def of routes) {
    const statuses = new Set<ProblemStatus>([500]);
    if (def.auth !== false) {
      statuses.add(401);
      statuses.add(403);
    }
    if (def.body || def.query) statuses.add(400);
    if (def.body) {
      statuses.add(413);
      statuses.add(415);
    }
    if (def.path.includes('{')) statuses.add(404);
    for (const s of def.problems ?? []) statuses.add(s);
    const responses: Record<number, ResponseConfig> = {
      [def.success.status]: {
        description: def.success.description,
        ...(def.success.location ? { headers: { Location: { description: 'The path of the created resource', schema: { type: 'string' } } } } : {}),
        content: {
          'application/json': { schema: def.success.schema },
          ...(def.success.text ? { 'text/plain': { schema: { type: 'string' as const, description: def.success.text } } } : {}),
        },
      },
    };
    for (const s of [...statuses].sort((a, b) => a - b)) responses[s] = problemResponse(s);
    registry.registerPath({
      method: def.method,
      path: apiPrefix + def.path,
      operationId: def.operationId,
      summary: def.summary,
      ...(def.description ? { description: def.description } : {}),
      tags: [def.tag],
      ...(def.auth === false ? { security: [] } : { security: [{ bearerAuth: [] }] }),
      request: {
        ...(def.params ? { params: def.params } : {}),
        ...(def.query ? { query: def.query as never } : {}),
        ...(def.body ? { body: { required: !def.bodyOptional, content: { 'application/json': { schema: def.body } } } } : {}),
      },
      responses,
    });
  }
  const generator = new OpenApiGeneratorV31(registry.definitions);
  return generator.generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Moat partner API',
      version: '1.0.0',
      description:
        'Tenants, protected domains, mailboxes, API keys, message tracking, LiveArchive search, sending pools, subnet checks, DKIM signing keys, the outbound relay (SMTP credentials, sending addresses, rate limit) and parked events. Errors are RFC 9457 problem details (application/problem+json). Paths below /api/v1 are stable.',
    },
    security: [{ bearerAuth: [] }],
  }) as unknown as Record<string, unknown>;
}
