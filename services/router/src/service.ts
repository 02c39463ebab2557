import { queues } from '@moat/contracts';
import { connectDependencies, createResolver, PoolMembership, type Logger, type RunningService } from '@moat/runtime';
import { DeliveryRepository, keyringFromConfig, MessageStore, PoolRepository, QueueControlRepository, RetrySchedule, TenantRepository, TtlCache, type DeliveryPolicy, type SendingPool } from '@moat/store';
import { PoolChooser } from './pool-chooser.js';
import type { Route } from '@moat/contracts';
import { BatchedDeliveries } from './batched-deliveries.js';
import type { Config } from './config.js';
import { MailRouteCache, resolveMailRoutes, type MailRoutes } from './mx.js';
import { RequestPublisher } from './requests.js';
import { DeliveryRouter, type TenantDeliveryPolicy } from './router.js';
import { ScheduleKeeper } from './schedule-keeper.js';
import { Scheduler } from './scheduler.js';

export interface RunningRouter extends RunningService {
  /** The admin port actually bound (-1 when off). */
  adminPort: number;
}

/**
 * The router: consumes message.filtered and delivery.result (queue `router`), writes the
 * deliveries table, publishes delivery.requested.<pool>, and runs the retry/lease scheduler.
 */
export async function start(config: Config, log: Logger): Promise<RunningRouter> {
  const deps = await connectDependencies('router', config, log);
  const tenants = new TenantRepository(deps.pool);
  const deliveries = new DeliveryRepository(deps.pool);
  const routeCache = new TtlCache<{ tenantId: string; routes: Route[] } | null>(config.MOAT_ROUTE_CACHE_MS);
  const resolve = createResolver({ mode: config.MOAT_DNS_MODE, servers: config.MOAT_DNS_SERVERS, staticFile: config.MOAT_DNS_STATIC_FILE, timeoutMs: config.MOAT_DNS_TIMEOUT_MS });
  const mxCache = new MailRouteCache((domain) => resolveMailRoutes(domain, resolve, config.MOAT_MX_PORT), config.MOAT_MX_CACHE_MS);
  const mailRoutes = (domain: string): Promise<MailRoutes> => mxCache.get(domain);
  // The sending pool of each attempt: sticky per destination, only pools with a live sender,
  // avoiding pools a destination refused (pool-chooser.ts). Pools come from the API (cached).
  const poolRepo = new PoolRepository(deps.pool);
  const poolList = new TtlCache<SendingPool[]>(Math.min(config.MOAT_ROUTE_CACHE_MS || 1_000, 5_000));
  const chooser = new PoolChooser({
    pools: () => poolList.get('all', () => poolRepo.list()),
    membership: new PoolMembership(deps.redis),
    redis: deps.redis,
    defaultPool: config.MOAT_DEFAULT_POOL,
    warmupDays: config.MOAT_POOL_WARMUP_DAYS,
    refusedForMs: config.MOAT_POOL_REFUSED_MS,
    log,
  });
  const publisher = new RequestPublisher(deps.broker, deliveries, { mailRoutes, claimLeaseMs: config.MOAT_PUBLISH_LEASE_MS, log }, (destination) => chooser.choose(destination));
  // Routing decisions of concurrent message.filtered events, and reads and transitions of
  // concurrent delivery.results, share statements (group commit); a batch holds at most what
  // the consumer has in flight.
  const batched = new BatchedDeliveries(deliveries, { maxItems: queues.router.prefetch });
  // Paused destinations (queue control). Whether any pause exists is cached as briefly as
  // routes are (at most 2 s), so that with no pause a routing decision costs no extra statement.
  const queueControl = new QueueControlRepository(deps.pool);
  const anyPause = new TtlCache<boolean>(Math.min(config.MOAT_ROUTE_CACHE_MS, 2_000));
  const holdIfPaused = async (ids: string[]) => ((await anyPause.get('any', () => queueControl.anyDestinationHeld())) ? queueControl.holdIfPaused(ids) : new Set<string>());
  // Retries and destination health in Redis (retry-schedule.ts); Postgres stays the truth.
  const schedule = new RetrySchedule(deps.redis);
  const keeper = new ScheduleKeeper({
    schedule,
    deliveries,
    backoff: { baseMs: config.MOAT_DESTINATION_BACKOFF_BASE_MS, maxMs: config.MOAT_DESTINATION_BACKOFF_MAX_MS },
    log,
  });
  // A tenant's own retry schedule and lifetime (API: /tenants/{id}/delivery-policy), over the defaults.
  const policyCache = new TtlCache<DeliveryPolicy | null>(Math.max(config.MOAT_ROUTE_CACHE_MS, 1_000));
  const policyFor = async (tenantId: string): Promise<TenantDeliveryPolicy> => {
    const own = await policyCache.get(tenantId, () => tenants.getDeliveryPolicy(tenantId));
    const baseMs = own?.retryBaseMs ?? config.MOAT_RETRY_BASE_MS;
    return {
      retry: { baseMs, maxMs: Math.max(baseMs, own?.retryMaxMs ?? config.MOAT_RETRY_MAX_MS) },
      lifetimeMs: own?.queueLifetimeMs ?? config.MOAT_QUEUE_LIFETIME_MS,
      delayWarningMs: own?.delayWarningMs ?? config.MOAT_DSN_DELAY_WARNING_MS,
    };
  };
  const router = new DeliveryRouter({
    broker: deps.broker,
    keeper,
    policyFor,
    holdIfPaused,
    onPoolRefused: (pool, destination) => chooser.markRefused(pool, destination),
    deliveries: batched,
    publisher,
    findRoutes: async (domain) => {
      const load = async () => {
        const d = await tenants.findDomainByName(domain);
        return d ? { tenantId: d.tenantId, routes: d.routes } : null;
      };
      // "Not protected" fails the recipient for good: never take that answer from the cache.
      return (await routeCache.get(domain, load)) ?? (await load());
    },
    mailRoutes,
    bounces: {
      store: new MessageStore(deps.pool, keyringFromConfig(config)),
      reportingMta: config.MOAT_DSN_REPORTING_MTA,
      delayWarningMs: config.MOAT_DSN_DELAY_WARNING_MS,
      deliveriesOf: (messageId) => deliveries.forMessage(messageId),
    },
    pool: config.MOAT_DEFAULT_POOL,
    policy: { retry: { baseMs: config.MOAT_RETRY_BASE_MS, maxMs: config.MOAT_RETRY_MAX_MS }, lifetimeMs: config.MOAT_QUEUE_LIFETIME_MS },
    log,
  });
  const scheduler = new Scheduler({
    deliveries,
    publisher,
    intervalMs: config.MOAT_SCHEDULER_INTERVAL_MS,
    batch: config.MOAT_SCHEDULER_BATCH,
    publishLeaseMs: config.MOAT_PUBLISH_LEASE_MS,
    queuedRepublishMs: config.MOAT_QUEUED_REPUBLISH_MS,
    // Only while some destination is paused: with none, a scheduler tick costs no extra statement.
    holdDuePaused: async () => ((await anyPause.get('any', () => queueControl.anyDestinationHeld())) ? queueControl.holdDuePaused() : 0),
    redis: {
      schedule,
      keeper,
      drainPerSecond: config.MOAT_DESTINATION_DRAIN_RATE,
      probeLeaseMs: config.MOAT_DESTINATION_PROBE_LEASE_MS,
      sweepMs: config.MOAT_RETRY_SWEEP_MS,
      sweepGraceMs: config.MOAT_RETRY_SWEEP_GRACE_MS,
      defaultLifetimeMs: config.MOAT_QUEUE_LIFETIME_MS,
      expire: (rows) => router.expireWaiting(rows),
    },
    log,
  });
  try {
    await deps.broker.consume(queues.router, (delivery) => router.handle(delivery.event));
  } catch (err) {
    await batched.close();
    await deps.close();
    throw err;
  }
  scheduler.start();
  return {
    adminPort: deps.adminPort,
    async stop() {
      await scheduler.stop();
      await deps.broker.drain(config.MOAT_SHUTDOWN_TIMEOUT_MS);
      // Nothing should be queued once the handlers finished; wait anyway, before the pool closes.
      await batched.close();
      await deps.close();
    },
  };
}
