import { hostname } from 'node:os';
import { z } from 'zod';
import { baseConfigShape, dnsConfigShape, envInt, masterKeyShape } from '@moat/runtime';

/** A pool name becomes part of a routing key and a queue name (`delivery.requested.<pool>`, `sender.<pool>`). */
export const poolName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,40}$/, 'lower-case letters, digits, _ and -');

export const configSchema = z.object({
  ...baseConfigShape,
  // The router reads originals (for the headers a DSN reports) and stores DSNs: the message key.
  ...masterKeyShape,
  // MX lookups of outbound mail and DSNs.
  ...dnsConfigShape,
  /** How long a domain → routes lookup is reused (ms); route changes take effect within this bound. 0: no cache. */
  MOAT_ROUTE_CACHE_MS: envInt(0, 3_600_000).default(5_000),
  /** Pool whose senders deliver inbound mail to customers' servers. */
  MOAT_DEFAULT_POOL: poolName.default('default'),
  /** A warming pool's share of its destinations grows from 5 % to 100 % over this many days. */
  MOAT_POOL_WARMUP_DAYS: envInt(1, 365).default(30),
  /** How long a (pool, destination) pair is avoided after the destination refused the pool. */
  MOAT_POOL_REFUSED_MS: envInt(1_000, 7 * 86_400_000).default(15 * 60_000),
  /** How long a row may stay 'publishing' before the scheduler publishes it again (a router died mid-publish). */
  MOAT_PUBLISH_LEASE_MS: envInt(1_000, 3_600_000).default(30_000),
  /** A recipient still deferred this long after its message was routed expires (5 days). */
  MOAT_QUEUE_LIFETIME_MS: envInt(1_000, 60 * 86_400_000).default(5 * 86_400_000),
  /** First retry delay; doubles per attempt up to MOAT_RETRY_MAX_MS, ±10 % jitter. */
  MOAT_RETRY_BASE_MS: envInt(10, 86_400_000).default(300_000),
  MOAT_RETRY_MAX_MS: envInt(10, 7 * 86_400_000).default(3_600_000),
  /** How often the scheduler looks for due retries and expired leases. */
  MOAT_SCHEDULER_INTERVAL_MS: envInt(10, 600_000).default(1_000),
  /**
   * A delivery 'queued' this long has its request published again (the sender dedupes): recovers
   * requests dead-lettered to parking. Keep it well above the longest normal queueing time.
   */
  MOAT_QUEUED_REPUBLISH_MS: envInt(1_000, 7 * 86_400_000).default(3_600_000),
  /** A destination found down (no route took a connection, or 421) backs off as a whole: first for this long… */
  MOAT_DESTINATION_BACKOFF_BASE_MS: envInt(100, 86_400_000).default(60_000),
  /** …doubling per failed probe up to this. */
  MOAT_DESTINATION_BACKOFF_MAX_MS: envInt(100, 7 * 86_400_000).default(3_600_000),
  /** How long the one probe attempt of a down destination may run before another is allowed. */
  MOAT_DESTINATION_PROBE_LEASE_MS: envInt(1_000, 3_600_000).default(120_000),
  /** Retries published per destination per second at most (a recovered server's backlog drains at this pace). */
  MOAT_DESTINATION_DRAIN_RATE: envInt(1, 100_000).default(100),
  /** How often Postgres is checked for deferred deliveries the Redis schedule lost, and for expired ones. */
  MOAT_RETRY_SWEEP_MS: envInt(100, 3_600_000).default(60_000),
  /** Deliveries overdue by less than this are left to the Redis schedule by that check. */
  MOAT_RETRY_SWEEP_GRACE_MS: envInt(0, 3_600_000).default(60_000),
  /** Rows the scheduler takes per query and kind. */
  MOAT_SCHEDULER_BATCH: envInt(1, 10_000).default(100),
  /** Port of the mail exchangers that MX routing finds (25; tests point it at a local server). */
  MOAT_MX_PORT: envInt(1, 65535).default(25),
  /** How long a domain's MX answer is reused (ms). Failed lookups are never reused. 0: no cache. */
  MOAT_MX_CACHE_MS: envInt(0, 86_400_000).default(60_000),
  /** Host name in DSNs: Reporting-MTA, MAILER-DAEMON@<host>, Message-ID. */
  MOAT_DSN_REPORTING_MTA: z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/, 'a host name (letters, digits, dots, hyphens)').default(hostname()),
  /** One delay warning (DSN, Action: delayed) per delivery still deferred this long after routing (4 h); 0: none. */
  MOAT_DSN_DELAY_WARNING_MS: envInt(0, 60 * 86_400_000).default(4 * 3_600_000),
});
export type Config = z.infer<typeof configSchema>;
