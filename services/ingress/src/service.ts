import { connectDependencies, createResolver, type Logger, type RunningService } from '@moat/runtime';
import { ensureDailyPartitions, keyringFromConfig, MessageStore, TenantRepository, TtlCache, type Domain } from '@moat/store';
import { lookupClientName } from './client-name.js';
import type { Config } from './config.js';
import { GroupCommitStore } from './group-commit-store.js';
import { RecipientPolicy } from './recipient-policy.js';
import { SmtpEdge } from './smtp-edge.js';
import { loadTlsCredentials } from './tls-credentials.js';

export interface RunningIngress extends RunningService {
  /** The SMTP port actually bound (MOAT_SMTP_PORT=0 picks one). */
  smtpPort: number;
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
  let edge: SmtpEdge | undefined;
  let store: GroupCommitStore | undefined;
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
    const policy = new RecipientPolicy((name) => domains.get(name, () => tenants.findDomainByName(name)), config.MOAT_MAX_RECIPIENTS, log);
    edge = new SmtpEdge({
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
      clientName: config.MOAT_REVERSE_DNS ? (ip) => lookupClientName(resolve, ip, config.MOAT_REVERSE_DNS_TIMEOUT_MS) : async () => null,
      intake: { store: bodies, broker: deps.broker, log },
      log,
    });
    const listening = edge;
    // Registered before listening: /readyz stays 503 until SMTP is actually served.
    deps.health.addCheck('smtp', () => listening.listening);
    const smtpPort = await edge.listen(config.MOAT_SMTP_PORT, config.MOAT_SMTP_HOST);
    log.info({ host: config.MOAT_SMTP_HOST, port: smtpPort, hostname: config.MOAT_SMTP_HOSTNAME, devCertificate: tls.dev }, 'smtp listening');

    let stopping: Promise<void> | null = null;
    return {
      smtpPort,
      adminPort: deps.adminPort,
      stop() {
        stopping ??= (async () => {
          clearInterval(partitionTimer);
          // Not ready first, so a load balancer stops sending before we stop taking.
          deps.health.markShuttingDown();
          await listening.close(config.MOAT_INTAKE_TIMEOUT_MS);
          // Bodies still queued are written (their sessions then publish or undo) before the pool goes.
          await bodies.close();
          await deps.close();
        })();
        return stopping;
      },
    };
  } catch (err) {
    clearInterval(partitionTimer);
    if (edge?.listening) await edge.close(0).catch(() => {});
    await store?.close().catch(() => {});
    await deps.close();
    throw err;
  }
}
