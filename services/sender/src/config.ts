import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { z } from 'zod';
import { baseConfigShape, dnsConfigShape, envInt, masterKeyShape } from '@moat/runtime';

export const configSchema = z.object({
  ...baseConfigShape,
  ...masterKeyShape,
  ...dnsConfigShape,
  /** The pool this sender serves: it consumes `sender.<pool>` (routing key `delivery.requested.<pool>`). */
  /** How long a heartbeat keeps this sender a member of its pool (renewed every third of it). */
  MOAT_POOL_HEARTBEAT_TTL_MS: envInt(600, 600_000).default(6_000),
  MOAT_POOL: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,40}$/, 'lower-case letters, digits, _ and -').default('default'),
  /** Source address every outbound connection binds to (one of the pool's addresses); unset: the OS picks. */
  MOAT_SOURCE_IP: z
    .string()
    .refine((v) => isIP(v) !== 0, 'must be an IPv4 or IPv6 address')
    .optional(),
  /** Name sent in EHLO (RFC 5321 §4.1.1.1: the FQDN of this host, which should match its PTR record). */
  MOAT_EHLO_NAME: z.string().regex(/^[^\s]{1,255}$/, 'one word without spaces or line breaks').default(hostname()),
  /** How long a claimed attempt stays ours without renewal; renewed every third of it while sending. */
  MOAT_SEND_LEASE_MS: envInt(5_000, 3_600_000).default(300_000),
  /** TCP connect timeout per address (Postfix smtp_connect_timeout: 30 s). */
  MOAT_SMTP_CONNECT_TIMEOUT_MS: envInt(100, 600_000).default(30_000),
  /** Wait for the 220 greeting (and a STARTTLS handshake; RFC 5321 §4.5.3.2.1 suggests 5 min). */
  MOAT_SMTP_GREETING_TIMEOUT_MS: envInt(100, 600_000).default(300_000),
  /** Inactivity limit inside a session (RFC 5321 §4.5.3.2.6: 10 min for the reply to the final dot). */
  MOAT_SMTP_SOCKET_TIMEOUT_MS: envInt(100, 3_600_000).default(600_000),
  /** How long an idle connection is kept for the next message to the same host:port. 0: never reused. */
  MOAT_SMTP_IDLE_MS: envInt(0, 600_000).default(5_000),
  /**
   * Connections (busy + idle) per destination host:port from ALL senders together (shared through
   * Redis; per sender while Redis is unreachable). Transactions beyond wait for one. Give every
   * sender the same value.
   */
  MOAT_MAX_CONNECTIONS_PER_DESTINATION: envInt(1, 1_000).default(10),
  /** A connection's slot under that limit lives this long without renewal: a killed sender's slots come back after it. */
  MOAT_DESTINATION_SLOT_LEASE_MS: envInt(300, 600_000).default(15_000),
  /** How long a transaction waits for a connection to its destination before it is deferred (4.4.5) and retried later. */
  MOAT_DESTINATION_WAIT_MS: envInt(100, 600_000).default(60_000),
  /**
   * Subnet check: an address of this host that lies in no pool's range. When set, this sender also
   * runs the check's outsider probe from it (does the customer's server refuse strangers?).
   */
  MOAT_SUBNET_CHECK_OUTSIDER_ADDRESS: z
    .string()
    .refine((v) => isIP(v) !== 0, 'must be an IPv4 or IPv6 address')
    .optional(),
  /** Subnet check: bound on each probe step (connect, banner, EHLO, STARTTLS, MAIL, RCPT). */
  MOAT_SUBNET_CHECK_STEP_TIMEOUT_MS: envInt(100, 300_000).default(20_000),
});
export type Config = z.infer<typeof configSchema>;
