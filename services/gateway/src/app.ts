import { randomUUID } from 'node:crypto';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import type { Broker, HealthServer, Logger } from '@moat/runtime';
import type { Keyring } from '@moat/store';
import { authenticate } from './access.js';
import { buildOpenApiDocument } from './openapi.js';
import { notFound, problemHandler } from './problem.js';
import type { GatewayRepositories } from './repositories.js';
import { defineRoute, mountRoutes, type RouteDef } from './route.js';
import type { SubnetCheckStarter } from './subnet-checks.js';
import { apiKeyRoutes } from './routes/api-keys.js';
import { archiveRoutes } from './routes/archive.js';
import { dkimKeyRoutes } from './routes/dkim-keys.js';
import { domainRoutes } from './routes/domains.js';
import { mailboxRoutes } from './routes/mailboxes.js';
import { messageRoutes } from './routes/messages.js';
import { deliveryPolicyRoutes } from './routes/delivery-policy.js';
import { outboundRoutes } from './routes/outbound.js';
import { filterPolicyRoutes } from './routes/filter-policy.js';
import { smtpPolicyRoutes } from './routes/smtp-policy.js';
import { queueRoutes } from './routes/queue.js';
import { parkedRoutes } from './routes/parked.js';
import { partnerRoutes } from './routes/partners.js';
import { poolRoutes } from './routes/pools.js';
import { quarantineRoutes } from './routes/quarantine.js';
import { spamFeedbackRoutes } from './routes/spam-feedback.js';
import { subnetCheckRoutes } from './routes/subnet-checks.js';
import { tenantRoutes } from './routes/tenants.js';
import { meRoutes } from './routes/me.js';
import { mountConsole } from './console.js';
import { mountDigestLinks } from './digest-links.js';
import { z } from 'zod';

export interface AppDeps {
  repos: GatewayRepositories;
  /** Parked-event replay publishes through it. */
  broker: Pick<Broker, 'publishRaw' | 'publish' | 'envelope'>;
  /** Starts subnet checks (publishes their probe requests, rate-limited per tenant). */
  subnetChecks: Pick<SubnetCheckStarter, 'start'>;
  health: Pick<HealthServer, 'handle'>;
  /** Opens quarantine previews (MOAT_QUARANTINE_PREVIEW_KEY); null or absent: previews are not shown. */
  previewKeyring?: Keyring | null;
  /** Verifies quarantine digest release links (MOAT_DIGEST_LINK_KEY); null or absent: those pages answer 404. */
  digestLinkKeys?: readonly Buffer[] | null;
  log: Logger;
  /** Largest JSON body accepted (default 100 KiB). */
  bodyLimitBytes?: number;
}

/** Every /api/v1 route, in the order the OpenAPI document lists them. */
export function apiRoutes(deps: Pick<AppDeps, 'repos' | 'broker' | 'subnetChecks' | 'previewKeyring'>): RouteDef[] {
  const routes: RouteDef[] = [
    ...meRoutes(deps.repos),
    ...tenantRoutes(deps.repos),
    ...domainRoutes(deps.repos),
    ...dkimKeyRoutes(deps.repos),
    ...mailboxRoutes(deps.repos),
    ...apiKeyRoutes(deps.repos),
    ...partnerRoutes(deps.repos),
    ...messageRoutes(deps.repos),
    ...archiveRoutes(deps.repos),
    ...quarantineRoutes(deps.repos, deps.broker, deps.previewKeyring ?? null),
    ...spamFeedbackRoutes(deps.repos),
    ...parkedRoutes(deps.repos, deps.broker),
    ...poolRoutes(deps.repos),
    ...subnetCheckRoutes(deps.repos, deps.subnetChecks),
    ...queueRoutes(deps.repos, deps.broker),
    ...deliveryPolicyRoutes(deps.repos),
    ...outboundRoutes(deps.repos),
    ...filterPolicyRoutes(deps.repos),
    ...smtpPolicyRoutes(deps.repos),
  ];
  let document: Record<string, unknown> | null = null;
  routes.push(
    defineRoute({
      method: 'get',
      path: '/openapi.json',
      operationId: 'getOpenApiDocument',
      summary: 'This OpenAPI 3.1 document',
      tag: 'meta',
      auth: false,
      success: { status: 200, description: 'The document', schema: z.record(z.string(), z.unknown()) },
      handler: async () => {
        document ??= buildOpenApiDocument(routes);
        return { body: document };
      },
    }),
  );
  return routes;
}

/** The express app, without listening: API tests run it in-process against the real Postgres. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use((req: Request, res: Response, next: NextFunction) => {
    const requestId = randomUUID();
    res.locals.requestId = requestId;
    res.setHeader('X-Request-Id', requestId);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      if (req.path === '/livez' || req.path === '/readyz') return;
      deps.log.info({ requestId, method: req.method, path: req.path, status: res.statusCode, ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'request');
    });
    next();
  });
  // Same answers as the admin port, so a load balancer can probe the port it sends traffic to.
  app.get(['/livez', '/readyz'], async (req: Request, res: Response) => {
    await deps.health.handle(req, res);
  });
  // The console's static files carry their own, stricter Content-Security-Policy.
  mountConsole(app);
  // Digest release links: outside /api/v1 and its bearer authentication (the signed link is the
  // credential), with their own headers and Content-Security-Policy.
  mountDigestLinks(app, { keys: deps.digestLinkKeys ?? null, quarantine: deps.repos.quarantine, links: deps.repos.digestLinks, audit: deps.repos.audit, broker: deps.broker, log: deps.log });
  app.use(helmet());
  app.use(express.json({ limit: deps.bodyLimitBytes ?? 100 * 1024, type: ['application/json', 'application/*+json'], strict: true }));
  const router = express.Router();
  mountRoutes(router, apiRoutes(deps), authenticate({ apiKeys: deps.repos.apiKeys, tenants: deps.repos.tenants, partners: deps.repos.partners }));
  app.use(router);
  app.use((req: Request) => {
    throw notFound(`no route for ${req.method} ${req.path}`);
  });
  app.use(problemHandler(deps.log));
  return app;
}
