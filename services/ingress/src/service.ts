import { routingKeys } from '@moat/contracts';
import { connectDependencies, createResolver, FixedWindowRateLimiter, type DnsResolve, type Logger, type Pool, type Redis, type RunningService } from '@moat/runtime';
import {
  ensureDailyPartitions,
  keyringFromConfig,
  MailboxDirectory,
  MessageStore,
  OutboundIpRepository,
  SmtpCredentialRepository,
  SmtpPolicyRepository,
  TenantRepository,
  TtlCache,
  type Domain,
  type SmtpPolicy,
} from '@moat/store';
import { ClientRateLimits } from './client-rate-limits.js';
import { lookupClientName } from './client-name.js';
import type { Config } from './config.js';
import { Dnsbl } from './dnsbl.js';
import { Greylist, type GreylistStore } from './greylist.js';
import { GroupCommitStore } from './group-commit-store.js';
import { OutboundRelay } from './outbound-relay.js';
import { RecipientPolicy } from './recipient-policy.js';
import { RecipientVerifier } from './recipient-verification.js';
import { RejectionTracker } from './rejection-tracker.js';
import { InboundChecks } from './smtp-checks.js';
import { SmtpEdge, type SmtpCheckDeps, type SmtpEdgeOptions } from './smtp-edge.js';
import { loadTlsCredentials } from './tls-credentials.js';

export interface RunningIngress extends RunningService {
  /** The SMTP port actually bound (MOAT_SMTP_PORT=0 picks one). */
  smtpPort: number;
  /** The submission port (STARTTLS + AUTH) actually bound; -1 when off. */
  submissionPort: number;
  /** The implicit-TLS submission port actually bound; -1 when off. */
  submissionsPort: number;
  /** The admin port (/livez, /readyz) actually bound; -1 when off. */
  adminPort: number;
}

const partitionIntervalMs = 60 * 60_000;

/**
 * Group commit of message bodies: up to 32 sessions share one INSERT, at most two INSERTs at
 * once (each holds a pool connection; the rest of the pool stays for lookups and deletes).
 */
const storeBatch = { maxItems: 32, maxConcurrentWrites: 2, maxBytes: 4 * 1024 * 1024 };

/**
 * Starts ingress: connects RabbitMQ, Postgres and Redis first (no SMTP before every dependency
 * is up), prepares the message store's day partitions, then listens for SMTP.
 */
export async function start(config: Config, log: Logger): Promise<RunningIngress> {
  // Before any connection: a bad certificate pair fails the start, not the first STARTTLS.
  const tls = await loadTlsCredentials({ certFile: config.MOAT_TLS_CERT_FILE, keyFile: config.MOAT_TLS_KEY_FILE, hostname: config.MOAT_SMTP_HOSTNAME }, log);
  const deps = await connectDependencies('ingress', config, log);
  let partitionTimer: NodeJS.Timeout | undefined;
  const edges: SmtpEdge[] = [];
  let store: GroupCommitStore | undefined;
  let rejections: RejectionTracker | undefined;
  try {
    await ensureDailyPartitions(deps.pool);
    // Partitions are prepared days ahead; the hourly run keeps that window moving. A miss is
    // harmless (rows land in the default partition), so it only logs.
    partitionTimer = setInterval(() => {
      ensureDailyPartitions(deps.pool).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'preparing message store partitions failed'));
    }, partitionIntervalMs);
    partitionTimer.unref();

    const resolve = createResolver({
      mode: config.MOAT_DNS_MODE,
      servers: config.MOAT_DNS_SERVERS,
      staticFile: config.MOAT_DNS_STATIC_FILE,
      timeoutMs: config.MOAT_DNS_TIMEOUT_MS,
    });
    const tenants = new TenantRepository(deps.pool);
    const domains = new TtlCache<Domain | null>(config.MOAT_DOMAIN_CACHE_MS);
    store = new GroupCommitStore(new MessageStore(deps.pool, keyringFromConfig(config)), storeBatch);
    const bodies = store;
    const findDomain = (name: string) => domains.get(name, () => tenants.findDomainByName(name));
    const policy = new RecipientPolicy(findDomain, config.MOAT_MAX_RECIPIENTS, log);
    // The outbound relay: registered ranges and rate limits are cached as briefly as domains.
    const outboundIps = new OutboundIpRepository(deps.pool);
    const credentials = new SmtpCredentialRepository(deps.pool);
    const clientTenants = new TtlCache<string | null>(config.MOAT_DOMAIN_CACHE_MS);
    const rateLimits = new TtlCache<number>(config.MOAT_DOMAIN_CACHE_MS);
    const relay = new OutboundRelay({
      authenticate: (username, password) => credentials.authenticate(username, password),
      tenantForAddress: (ip) => clientTenants.get(ip, () => outboundIps.tenantForAddress(ip)),
      findDomain,
      messagesPerWindow: (tenantId) => rateLimits.get(tenantId, async () => (await tenants.getOutboundPolicy(tenantId))?.messagesPerMinute ?? config.MOAT_OUTBOUND_RATE_LIMIT),
      messages: new FixedWindowRateLimiter(deps.redis, { name: 'outbound-messages', limit: config.MOAT_OUTBOUND_RATE_LIMIT, windowMs: config.MOAT_OUTBOUND_RATE_WINDOW_MS }),
      authFailures: new FixedWindowRateLimiter(deps.redis, { name: 'smtp-auth-failures', limit: config.MOAT_SMTP_AUTH_MAX_FAILURES, windowMs: config.MOAT_SMTP_AUTH_FAILURE_WINDOW_MS }),
      log,
    });
    rejections = new RejectionTracker(
      (payload) => deps.broker.publish(routingKeys.messageEvent, deps.broker.envelope('message.event', payload)),
      { flushMs: config.MOAT_INGRESS_REJECTION_FLUSH_MS, maxEventsPerFlush: config.MOAT_INGRESS_REJECTION_EVENTS_MAX },
      log,
    );
    const checks = smtpChecks(config, deps.redis, deps.pool, resolve, rejections, log);
    const common: Omit<SmtpEdgeOptions, 'listener' | 'implicitTls'> = {
      hostname: config.MOAT_SMTP_HOSTNAME,
      maxMessageBytes: config.MOAT_MAX_MESSAGE_BYTES,
      maxClients: config.MOAT_SMTP_MAX_CLIENTS,
      limits: {
        maxMessageLineBytes: config.MOAT_SMTP_MAX_MESSAGE_LINE_BYTES,
        maxHeaderBytes: config.MOAT_SMTP_MAX_HEADER_BYTES,
        maxClientsPerIp: config.MOAT_SMTP_MAX_CLIENTS_PER_IP,
        maxCommandLineBytes: config.MOAT_SMTP_MAX_COMMAND_LINE_BYTES,
        idleTimeoutMs: config.MOAT_SMTP_IDLE_TIMEOUT_MS,
        dataTimeoutMs: config.MOAT_SMTP_DATA_TIMEOUT_MS,
        maxCommands: config.MOAT_SMTP_MAX_COMMANDS,
        maxErrors: config.MOAT_SMTP_MAX_ERRORS,
        maxUnknownCommands: config.MOAT_SMTP_MAX_UNKNOWN_COMMANDS,
      },
      closeTimeoutMs: config.MOAT_SMTP_CLOSE_TIMEOUT_MS,
      intakeTimeoutMs: config.MOAT_INTAKE_TIMEOUT_MS,
      tls,
      policy,
      relay,
      maxRecipients: config.MOAT_MAX_RECIPIENTS,
      clientName: config.MOAT_REVERSE_DNS ? (ip) => lookupClientName(resolve, ip, config.MOAT_REVERSE_DNS_TIMEOUT_MS) : async () => null,
      intake: { store: bodies, broker: deps.broker, log },
      checks,
      log,
    };
    const listeners = [
      { name: 'smtp', port: config.MOAT_SMTP_PORT, options: { ...common, listener: 'mx' as const } },
      { name: 'submission', port: config.MOAT_SUBMISSION_PORT, options: { ...common, listener: 'submission' as const } },
      { name: 'submissions', port: config.MOAT_SUBMISSIONS_PORT, options: { ...common, listener: 'submission' as const, implicitTls: true } },
    ];
    const ports: Record<string, number> = {};
    for (const l of listeners) {
      if (l.port < 0) {
        ports[l.name] = -1;
        continue;
      }
      const edge = new SmtpEdge(l.options);
      edges.push(edge);
      // Registered before listening: /readyz stays 503 until every listener actually serves.
      deps.health.addCheck(l.name, () => edge.listening);
      ports[l.name] = await edge.listen(l.port, config.MOAT_SMTP_HOST);
      log.info({ listener: l.name, host: config.MOAT_SMTP_HOST, port: ports[l.name], hostname: config.MOAT_SMTP_HOSTNAME, devCertificate: tls.dev }, 'smtp listening');
    }

    let stopping: Promise<void> | null = null;
    return {
      smtpPort: ports.smtp!,
      submissionPort: ports.submission!,
      submissionsPort: ports.submissions!,
      adminPort: deps.adminPort,
      stop() {
        stopping ??= (async () => {
          clearInterval(partitionTimer);
          // Not ready first, so a load balancer stops sending before we stop taking.
          deps.health.markShuttingDown();
          await Promise.all(edges.map((e) => e.close(config.MOAT_INTAKE_TIMEOUT_MS)));
          // The last refusals reach tracking while the broker is still there.
          await rejections?.close();
          // Bodies still queued are written (their sessions then publish or undo) before the pool goes.
          await bodies.close();
          await deps.close();
        })();
        return stopping;
      },
    };
  } catch (err) {
    clearInterval(partitionTimer);
    for (const e of edges) if (e.listening) await e.close(0).catch(() => {});
    await store?.close().catch(() => {});
    await rejections?.close().catch(() => {});
    await deps.close();
    throw err;
  }
}

/** The SMTP-time checks (README "SMTP-time checks"), built from the config. */
function smtpChecks(config: Config, redis: Redis, pool: Pool, resolve: DnsResolve, rejections: RejectionTracker, log: Logger): SmtpCheckDeps {
  const window = config.MOAT_INGRESS_RATE_WINDOW_MS;
  const limiter = (name: string, limit: number) => new FixedWindowRateLimiter(redis, { name, limit, windowMs: window });
  const rateLimits = config.MOAT_INGRESS_RATE_LIMITS
    ? new ClientRateLimits(
        {
          connections: limiter('client-connections', config.MOAT_INGRESS_RATE_CONNECTIONS),
          messages: limiter('client-messages', config.MOAT_INGRESS_RATE_MESSAGES),
          recipients: limiter('client-recipients', config.MOAT_INGRESS_RATE_RECIPIENTS),
        },
        config.MOAT_INGRESS_REDIS_CHECK_TIMEOUT_MS,
        log,
      )
    : null;
  // A dumb adapter: the decisions are greylist.ts'.
  const greylistStore: GreylistStore = {
    get: (key) => redis.get(key),
    set: async (key, w) => {
      if (w.onlyIfAbsent) await redis.set(key, w.value, 'PX', w.ttlMs, 'NX');
      else await redis.set(key, w.value, 'PX', w.ttlMs);
    },
  };
  const mailboxes = new MailboxDirectory(pool);
  const policies = new SmtpPolicyRepository(pool);
  // Tenants' SMTP policies change through the API: cached as briefly as protected domains.
  const policyCache = new TtlCache<SmtpPolicy>(config.MOAT_DOMAIN_CACHE_MS);
  const dnsbl = new Dnsbl(config.MOAT_INGRESS_DNSBL_ZONES, resolve, { timeoutMs: config.MOAT_INGRESS_DNSBL_TIMEOUT_MS, cacheMs: config.MOAT_INGRESS_DNSBL_CACHE_MS }, log);
  const inbound = new InboundChecks({
    verifier: new RecipientVerifier(mailboxes, { cacheMs: config.MOAT_INGRESS_MAILBOX_CACHE_MS, delimiters: config.MOAT_INGRESS_RECIPIENT_DELIMITER }, log),
    rateLimits,
    greylist: new Greylist(greylistStore, { timeoutMs: config.MOAT_INGRESS_REDIS_CHECK_TIMEOUT_MS }, log),
    smtpPolicy: (tenantId) => policyCache.get(tenantId, () => policies.get(tenantId)),
    log,
  });
  log.info(
    {
      rateLimits: rateLimits ? { windowMs: window, connections: config.MOAT_INGRESS_RATE_CONNECTIONS, messages: config.MOAT_INGRESS_RATE_MESSAGES, recipients: config.MOAT_INGRESS_RATE_RECIPIENTS } : 'off',
      dnsblZones: config.MOAT_INGRESS_DNSBL_ZONES.map((z) => z.zone),
      exemptCidrs: config.MOAT_INGRESS_EXEMPT_CIDRS,
    },
    'smtp-time checks',
  );
  return { inbound, dnsbl, rateLimits, exemptCidrs: config.MOAT_INGRESS_EXEMPT_CIDRS, rejections };
}
