import { queues } from '@moat/contracts';
import { connectDependencies, createResolver, DestinationSlots, PermanentFailure, PoolMembership, type Logger, type RunningService } from '@moat/runtime';
import { DeliveryRepository, keyringFromConfig, MessageStore, SubnetCheckRepository } from '@moat/store';
import type { Config } from './config.js';
import { BatchedDeliveries } from './batched-deliveries.js';
import { ConnectionPool } from './connection-pool.js';
import { Deliverer } from './deliver.js';
import { SendHandler } from './handler.js';
import { assertLocalAddress } from './local-address.js';
import type { SmtpSession } from './smtp-session.js';
import { SubnetCheckHandler } from './subnet-check-handler.js';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { SharedConnectionLimit } from './shared-limit.js';

export interface RunningSender extends RunningService {
  adminPort: number;
  /** The pool this sender serves. */
  pool: string;
}

/**
 * A sender for one pool: consumes `sender.<pool>`, delivers each attempt in one SMTP transaction
 * from MOAT_SOURCE_IP, and reports delivery.result.
 */
export async function start(config: Config, log: Logger): Promise<RunningSender> {
  const outsider = config.MOAT_SUBNET_CHECK_OUTSIDER_ADDRESS;
  if (outsider) await assertLocalAddress(outsider, 'MOAT_SUBNET_CHECK_OUTSIDER_ADDRESS');
  const deps = await connectDependencies('sender', config, log);
  const policy = queues.sender(config.MOAT_POOL);
  const session = {
    ehloName: config.MOAT_EHLO_NAME,
    localAddress: config.MOAT_SOURCE_IP,
    connectTimeoutMs: config.MOAT_SMTP_CONNECT_TIMEOUT_MS,
    greetingTimeoutMs: config.MOAT_SMTP_GREETING_TIMEOUT_MS,
    socketTimeoutMs: config.MOAT_SMTP_SOCKET_TIMEOUT_MS,
  };
  const senderId = `${hostname()}/${process.pid}/${config.MOAT_SOURCE_IP ?? 'any'}`;
  // The per-destination limit counts every sender's connections (Redis); a random part keeps two
  // incarnations of one pid (a restart in a container) from sharing lease ids.
  const sharedLimit = new SharedConnectionLimit({
    store: new DestinationSlots(deps.redis),
    senderId: `${senderId}/${randomBytes(3).toString('hex')}`,
    limit: config.MOAT_MAX_CONNECTIONS_PER_DESTINATION,
    leaseMs: config.MOAT_DESTINATION_SLOT_LEASE_MS,
    callTimeoutMs: 1_000,
    log,
  });
  sharedLimit.start();
  const connections = new ConnectionPool<SmtpSession>({
    maxPerDestination: config.MOAT_MAX_CONNECTIONS_PER_DESTINATION,
    idleMs: config.MOAT_SMTP_IDLE_MS,
    resetTimeoutMs: Math.min(config.MOAT_SMTP_GREETING_TIMEOUT_MS, 30_000),
    shared: sharedLimit,
    waitMs: Math.min(config.MOAT_DESTINATION_WAIT_MS, policy.handlerTimeoutMs - 120_000),
    // Long enough for a loaded server to process the FIN of a connection we closed.
    slotReleaseGraceMs: 250,
  });
  const resolve = createResolver({ mode: config.MOAT_DNS_MODE, servers: config.MOAT_DNS_SERVERS, staticFile: config.MOAT_DNS_STATIC_FILE, timeoutMs: config.MOAT_DNS_TIMEOUT_MS });
  const deliverer = new Deliverer({
    pool: connections,
    session,
    resolve,
    // The attempt must end (and be reported) before the broker's handler timeout hands the
    // request to someone else; one minute is left for reading the body and publishing.
    attemptBudgetMs: policy.handlerTimeoutMs - 60_000,
    log,
  });
  // Claims and outcomes of concurrent requests share statements (group commit); a batch holds
  // at most what the consumer has in flight.
  const deliveries = new BatchedDeliveries(new DeliveryRepository(deps.pool), { maxItems: policy.prefetch });
  const handler = new SendHandler({
    broker: deps.broker,
    deliveries,
    store: new MessageStore(deps.pool, keyringFromConfig(config)),
    deliverer,
    leaseMs: config.MOAT_SEND_LEASE_MS,
    log,
  });
  try {
    await deps.broker.consume(policy, async ({ event }) => {
      if (event.type !== 'delivery.requested') throw new PermanentFailure(`sender queue got ${event.type}`);
      await handler.handle(event.payload);
    });
    // Subnet-check probes: this pool's, from MOAT_SOURCE_IP; the outsider's when configured here.
    const probes = { checks: new SubnetCheckRepository(deps.pool), ehloName: config.MOAT_EHLO_NAME, stepTimeoutMs: config.MOAT_SUBNET_CHECK_STEP_TIMEOUT_MS, resolve, log };
    const poolProbes = new SubnetCheckHandler({ ...probes, source: 'pool', pool: config.MOAT_POOL, sourceAddress: config.MOAT_SOURCE_IP });
    await deps.broker.consume(queues.subnetCheck(config.MOAT_POOL), async ({ event }) => {
      if (event.type !== 'subnetcheck.requested') throw new PermanentFailure(`subnet-check queue got ${event.type}`);
      await poolProbes.handle(event.payload);
    });
    if (outsider) {
      const outsiderProbes = new SubnetCheckHandler({ ...probes, source: 'outsider', pool: null, sourceAddress: outsider });
      await deps.broker.consume(queues.subnetCheckOutsider, async ({ event }) => {
        if (event.type !== 'subnetcheck.requested') throw new PermanentFailure(`subnet-check outsider queue got ${event.type}`);
        await outsiderProbes.handle(event.payload);
      });
    }
  } catch (err) {
    await sharedLimit.stop();
    await deliveries.close();
    await deps.close();
    throw err;
  }
  // Pool membership (Redis): the router sends a pool's mail only while the pool has a live
  // sender, and fails over to another pool when none is left. A failed heartbeat (Redis away) only
  // logs: the membership lapses after its TTL, and mail then waits or goes through another pool.
  const membership = new PoolMembership(deps.redis);
  const beat = () => membership.heartbeat(config.MOAT_POOL, senderId, config.MOAT_POOL_HEARTBEAT_TTL_MS).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'pool heartbeat failed'));
  await beat();
  const heartbeat = setInterval(() => void beat(), Math.max(200, Math.floor(config.MOAT_POOL_HEARTBEAT_TTL_MS / 3)));
  heartbeat.unref();
  log.info({ pool: config.MOAT_POOL, sourceIp: config.MOAT_SOURCE_IP ?? null, ehlo: config.MOAT_EHLO_NAME, subnetCheckOutsider: outsider ?? null }, 'sender consuming');
  return {
    adminPort: deps.adminPort,
    pool: config.MOAT_POOL,
    async stop() {
      // Out of the pool first: the router stops choosing it for new mail while this drains.
      clearInterval(heartbeat);
      await membership.leave(config.MOAT_POOL, senderId).catch(() => {});
      // Stop taking requests and let transactions in flight finish and report (nothing is sent
      // twice because of a shutdown), then QUIT the kept connections.
      await deps.broker.drain(config.MOAT_SHUTDOWN_TIMEOUT_MS);
      await connections.close();
      // Withdraws this sender's wishes; its slots went back as the pool closed its connections.
      await sharedLimit.stop();
      // Nothing should be queued once the handlers finished; wait anyway, before the pool closes.
      await deliveries.close();
      await deps.close();
    },
  };
}
