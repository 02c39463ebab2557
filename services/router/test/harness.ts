import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { AnyEvent, DeliveryResultPayload, MessageEventPayload, MessageFilteredPayload, Route, Verdict } from '@moat/contracts';
import { Broker, loadConfig } from '@moat/runtime';
import { DeliveryRepository, keyringFromConfig, MessageStore, TenantRepository } from '@moat/store';
import { createTestEnv, silentLog, testPool, type TestEnv } from '@moat/testkit';
import * as router from '../src/index.js';
// Relative: a service never depends on another service; only their tests meet here.
import * as sender from '../../sender/src/index.js';

/**
 * Router and sender started in-process against the real RabbitMQ/Postgres/Redis of an isolated
 * test environment, plus what a test needs to drive them: a publisher for message.filtered and a
 * probe queue recording delivery.requested.*, delivery.result and message.event.
 * (Shared by the router's and the sender's integration tests, which exercise the pair.)
 */
export interface Harness {
  t: TestEnv;
  db: ReturnType<typeof testPool>;
  broker: Broker;
  tenants: TenantRepository;
  deliveries: DeliveryRepository;
  store: MessageStore;
  /** Every event the probe saw, in arrival order. */
  events: AnyEvent[];
  router: router.RunningRouter | null;
  sender: sender.RunningSender | null;
  /** Starts the router, with these settings on top of the harness's (e.g. after changing the DNS zone). */
  startRouter(extra?: Record<string, string>): Promise<void>;
  startSender(): Promise<void>;
  /** A tenant with one protected domain routed to the given servers; returns the tenant id. */
  protect(domain: string, routes: Route[]): Promise<string>;
  /** Stores a body and publishes message.filtered for it (as the filter would). */
  feed(opts: FeedOptions): Promise<Fed>;
  resultsFor(messageId: string): DeliveryResultPayload[];
  trackingFor(messageId: string): MessageEventPayload[];
  stop(): Promise<void>;
}

export interface FeedOptions {
  tenantId: string;
  rcpts: string[];
  raw?: Buffer;
  mailFrom?: string;
  verdict?: Verdict;
  /** Inbound by default; outbound mail to unprotected domains is routed by MX. */
  direction?: 'inbound' | 'outbound';
}

export interface Fed {
  messageId: string;
  raw: Buffer;
  prependHeaders: string;
  event: AnyEvent;
}

export const uniq = () => randomBytes(4).toString('hex');

/** Settings that make retries and the scheduler fast enough for tests. */
export const fastRetries = {
  MOAT_RETRY_BASE_MS: '200',
  MOAT_RETRY_MAX_MS: '1000',
  MOAT_DESTINATION_BACKOFF_BASE_MS: '300',
  MOAT_DESTINATION_BACKOFF_MAX_MS: '1000',
  MOAT_DESTINATION_PROBE_LEASE_MS: '3000',
  MOAT_RETRY_SWEEP_MS: '500',
  MOAT_RETRY_SWEEP_GRACE_MS: '300',
  MOAT_SCHEDULER_INTERVAL_MS: '100',
  MOAT_ROUTE_CACHE_MS: '0',
  MOAT_SMTP_CONNECT_TIMEOUT_MS: '2000',
  MOAT_SMTP_GREETING_TIMEOUT_MS: '5000',
  MOAT_SMTP_SOCKET_TIMEOUT_MS: '10000',
  // Short, so that a CustomerServer's stop() (which waits for open sessions) is not held long.
  MOAT_SMTP_IDLE_MS: '300',
};

export async function startHarness(opts: { router?: Record<string, string>; sender?: Record<string, string>; start?: boolean } = {}): Promise<Harness> {
  const t = await createTestEnv();
  const db = testPool(t);
  const broker = new Broker({ url: t.env.MOAT_AMQP_URL!, namespace: t.env.MOAT_NAMESPACE!, producer: 'test', log: silentLog });
  await broker.connect();
  const events: AnyEvent[] = [];
  await broker.consume({ name: 'probe', bindings: ['delivery.requested.*', 'delivery.result', 'message.event'], prefetch: 256, deliveryLimit: 10, handlerTimeoutMs: 10_000 }, async ({ event }) => {
    events.push(event);
  });
  const store = new MessageStore(db, keyringFromConfig({ MOAT_MASTER_KEY: t.env.MOAT_MASTER_KEY!, MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' }));
  const tenants = new TenantRepository(db);
  const h: Harness = {
    t,
    db,
    broker,
    tenants,
    deliveries: new DeliveryRepository(db),
    store,
    events,
    router: null,
    sender: null,
    async startRouter(extra = {}) {
      h.router = await router.start(loadConfig(router.configSchema, { ...t.env, ...fastRetries, ...opts.router, ...extra }), silentLog);
    },
    async startSender() {
      h.sender = await sender.start(loadConfig(sender.configSchema, { ...t.env, ...fastRetries, MOAT_EHLO_NAME: 'moat.test', ...opts.sender }), silentLog);
    },
    async protect(domain, routes) {
      const tenant = await tenants.createTenant({ name: `tenant ${domain}` });
      await tenants.createDomain(tenant.id, { name: domain, routes });
      return tenant.id;
    },
    async feed(f) {
      const messageId = randomUUID();
      const receivedAt = new Date();
      const raw =
        f.raw ??
        Buffer.from(
          [`From: <s@outside.test>`, `To: ${f.rcpts.join(', ')}`, `Subject: test ${messageId}`, `Message-ID: <${messageId}@outside.test>`, '', 'Hello.', '.a line that starts with a dot', ''].join('\r\n'),
        );
      const sha256 = createHash('sha256').update(raw).digest('hex');
      const ref = await store.put({ id: messageId, tenantId: f.tenantId, receivedAt, sha256, raw });
      const prependHeaders = `Received: from client.test ([127.0.0.1]) by moat.test with ESMTP id ${messageId}; ${receivedAt.toUTCString()}\r\nX-Moat-Verdict: ${f.verdict ?? 'deliver'}\r\n`;
      const payload: MessageFilteredPayload = {
        messageId,
        tenantId: f.tenantId,
        direction: f.direction ?? 'inbound',
        store: ref,
        mailFrom: f.mailFrom ?? 's@outside.test',
        rcptTo: f.rcpts,
        client: { ip: '127.0.0.1', helo: 'client.test', ptr: null, tls: null },
        size: raw.length,
        sha256,
        prependHeaders,
        receivedAt: receivedAt.toISOString(),
        verdict: f.verdict ?? 'deliver',
        score: 0,
        reasons: [],
        checks: [],
        authResults: 'moat.test; none',
        headers: { from: '<s@outside.test>', to: null, subject: `test ${messageId}`, date: null, messageIdHeader: null },
      };
      const event = broker.envelope('message.filtered', payload);
      await broker.publish('message.filtered', event);
      return { messageId, raw, prependHeaders, event };
    },
    resultsFor(messageId) {
      return events.flatMap((e) => (e.type === 'delivery.result' && e.payload.messageId === messageId ? [e.payload] : []));
    },
    trackingFor(messageId) {
      return events.flatMap((e) => (e.type === 'message.event' && e.payload.messageId === messageId ? [e.payload] : []));
    },
    async stop() {
      await h.router?.stop().catch(() => {});
      await h.sender?.stop().catch(() => {});
      await broker.drain(1_000);
      await broker.destroyNamespace(['filter', 'archive', 'router', 'tracker', 'sender.default', 'subnet-check.default', 'probe']).catch(() => {});
      await broker.close();
      await db.end();
      await t.cleanup();
    },
  };
  if (opts.start !== false) {
    await h.startRouter();
    await h.startSender();
  }
  return h;
}
