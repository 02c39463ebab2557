import { hostname } from 'node:os';
import { z } from 'zod';
import { baseConfigShape, dnsConfigShape, envBoolean, envInt, envList, masterKeyShape } from '@moat/runtime';
import { normalizeCidr } from '@moat/store';
import { parseDnsblZones } from './dnsbl.js';
import { defaultSmtpLimits } from './smtp-limits.js';

/** A host name as it may appear in the banner and in Received headers (RFC 1123 labels). */
const hostName = z
  .string()
  .max(253)
  .regex(/^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/, 'must be a host name');

/** A CIDR range as Moat spells it (cidr.ts); host bits or a missing prefix are refused, naming the range. */
const cidrText = z.string().transform((v, ctx) => {
  try {
    return normalizeCidr(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

export const configSchema = z
  .object({
    ...baseConfigShape,
    ...masterKeyShape,
    ...dnsConfigShape,
    /** Address the SMTP listeners bind (MX and submission ports). */
    MOAT_SMTP_HOST: z.string().min(1).default('0.0.0.0'),
    /** SMTP port (MX traffic); 0 picks a free port (tests). */
    MOAT_SMTP_PORT: envInt(0, 65535).default(2525),
    /**
     * Submission port (RFC 6409, 587 in production) for customers' outbound mail: STARTTLS, then
     * AUTH. 0 picks a free port (tests); -1 turns the listener off.
     */
    MOAT_SUBMISSION_PORT: envInt(-1, 65535).default(2587),
    /** Submission over implicit TLS (RFC 8314 §3.3, 465 in production). 0 picks a free port; -1 turns it off. */
    MOAT_SUBMISSIONS_PORT: envInt(-1, 65535).default(2465),
    /**
     * Outbound messages a tenant may relay per window (MOAT_OUTBOUND_RATE_WINDOW_MS) when the tenant
     * has no limit of its own (API: /tenants/{id}/outbound-policy); beyond it MAIL FROM gets 451 4.7.1.
     */
    MOAT_OUTBOUND_RATE_LIMIT: envInt(1, 10_000_000).default(300),
    /** The window of the outbound rate limit (fixed, in Redis, shared by every ingress). A minute; shorter only for tests. */
    MOAT_OUTBOUND_RATE_WINDOW_MS: envInt(1_000, 3_600_000).default(60_000),
    /** Failed SMTP AUTHs per client IPv4 address or IPv6 /64 per window; then AUTH gets 421 4.7.0 until the window ends. */
    MOAT_SMTP_AUTH_MAX_FAILURES: envInt(1, 100_000).default(10),
    MOAT_SMTP_AUTH_FAILURE_WINDOW_MS: envInt(1_000, 86_400_000).default(900_000),
    /** Name in the 220 banner and in the `by` clause of the Received header. */
    MOAT_SMTP_HOSTNAME: hostName.default(hostname()),
    /** Concurrent SMTP connections; the next one gets 421 (RFC 5321 §3.8). */
    MOAT_SMTP_MAX_CLIENTS: envInt(1, 100_000).default(1_000),
    /** Concurrent SMTP connections per client IPv4 address or IPv6 /64; the next one gets 421 4.7.0. */
    MOAT_SMTP_MAX_CLIENTS_PER_IP: envInt(1, 100_000).default(defaultSmtpLimits.maxClientsPerIp),
    /**
     * Longest command line in octets, CRLF not counted (RFC 5321 §4.5.3.1.4: 512 with CRLF, more
     * with extensions; Postfix reads 2048); longer gets 500 5.5.2.
     */
    MOAT_SMTP_MAX_COMMAND_LINE_BYTES: envInt(510, 65_536).default(defaultSmtpLimits.maxCommandLineBytes),
    /**
     * Longest message line in octets, CRLF not counted; longer gets 550 5.6.0. RFC 5322 §2.1.1's
     * 998 is the floor: real mail has longer lines and servers pass them, so the default refuses
     * only what no mail software writes.
     */
    MOAT_SMTP_MAX_MESSAGE_LINE_BYTES: envInt(998, 1_073_741_824).default(defaultSmtpLimits.maxMessageLineBytes),
    /** Largest header section in octets (Exchange Online's limit); larger gets 552 5.3.4. */
    MOAT_SMTP_MAX_HEADER_BYTES: envInt(1_024, 1_073_741_824).default(defaultSmtpLimits.maxHeaderBytes),
    /** Command lines per session; the next one gets 421 4.7.0 and the connection is closed. */
    MOAT_SMTP_MAX_COMMANDS: envInt(10, 10_000_000).default(defaultSmtpLimits.maxCommands),
    /** Error replies (5xx) per session; the last one is followed by 421 4.7.0 and the close. */
    MOAT_SMTP_MAX_ERRORS: envInt(1, 100_000).default(defaultSmtpLimits.maxErrors),
    /** Unrecognized commands per session (each 500 5.5.1); the next one gets 421 4.7.0. */
    MOAT_SMTP_MAX_UNKNOWN_COMMANDS: envInt(0, 100_000).default(defaultSmtpLimits.maxUnknownCommands),
    /**
     * No byte from the client for this long, or a command line not complete this long after its
     * first byte: 421 4.4.2 (RFC 5321 §4.5.3.2.7: at least 5 minutes awaiting a command).
     */
    MOAT_SMTP_IDLE_TIMEOUT_MS: envInt(1_000, 3_600_000).default(defaultSmtpLimits.idleTimeoutMs),
    /** From 354 to the final dot at most this long, however steadily the client sends: 421 4.4.2. */
    MOAT_SMTP_DATA_TIMEOUT_MS: envInt(1_000, 3_600_000).default(defaultSmtpLimits.dataTimeoutMs),
    /** How long stop() lets open sessions finish before answering 421 to the stragglers. */
    MOAT_SMTP_CLOSE_TIMEOUT_MS: envInt(0, 600_000).default(10_000),
    /** Look up (and forward-confirm) the client's PTR name for the Received header. */
    MOAT_REVERSE_DNS: envBoolean.default(true),
    /** Bound of the reverse lookup; a slow resolver yields "unknown", never a stalled session. */
    MOAT_REVERSE_DNS_TIMEOUT_MS: envInt(50, 30_000).default(1_500),
    /** PEM certificate chain and key for STARTTLS; both or neither (then a dev certificate is generated). */
    MOAT_TLS_CERT_FILE: z.string().min(1).optional(),
    MOAT_TLS_KEY_FILE: z.string().min(1).optional(),
    /**
     * How long a protected-domain lookup is cached (0: no cache); also registered outbound ranges
     * and tenants' outbound rate limits, so API changes apply within this bound.
     */
    MOAT_DOMAIN_CACHE_MS: envInt(0, 3_600_000).default(5_000),
    /** Recipients per message (RFC 5321 §4.5.3.1.8 requires at least 100). */
    MOAT_MAX_RECIPIENTS: envInt(1, 10_000).default(100),
    /** Largest message accepted, in bytes, advertised in EHLO SIZE (RFC 1870). */
    MOAT_MAX_MESSAGE_BYTES: envInt(1_024, 1_073_741_824).default(26_214_400),
    /** Bound on storing + publishing one message before the client gets 451 instead of waiting. */
    MOAT_INTAKE_TIMEOUT_MS: envInt(1_000, 600_000).default(60_000),
    // SMTP-time checks (README "SMTP-time checks"; smtp-checks.ts).
    /**
     * Client ranges (CIDR, comma-separated) exempt from per-client rate limits, DNSBL and
     * greylisting: the operator's own relays, monitoring, partners' servers. Tenants' registered
     * outbound ranges and authenticated clients are exempt without being listed here.
     */
    MOAT_INGRESS_EXEMPT_CIDRS: envList.pipe(z.array(cidrText)).default([]),
    /** How long a mailbox-list answer (recipient verification) is cached; a new mailbox is known within this. */
    MOAT_INGRESS_MAILBOX_CACHE_MS: envInt(0, 3_600_000).default(30_000),
    /** Subaddress delimiter characters (RFC 5233): `alice+tag@` is verified as `alice@`. Empty: none. */
    MOAT_INGRESS_RECIPIENT_DELIMITER: z.string().max(8).regex(/^[^@\s\w.]*$/, 'must be delimiter characters such as + or -').default('+'),
    /** Per-client rate limits in Redis (connections, messages, recipients per client IP per window). */
    MOAT_INGRESS_RATE_LIMITS: envBoolean.default(true),
    MOAT_INGRESS_RATE_WINDOW_MS: envInt(1_000, 86_400_000).default(60_000),
    /** New connections per client IPv4 address or IPv6 /64 per window on the MX port; beyond: 421 4.7.0. */
    MOAT_INGRESS_RATE_CONNECTIONS: envInt(1, 10_000_000).default(600),
    /** Inbound messages (transactions reaching a protected recipient) per client per window; beyond: 451 4.7.1. */
    MOAT_INGRESS_RATE_MESSAGES: envInt(1, 10_000_000).default(1_200),
    /** Inbound recipients (RCPTs to protected domains, refused ones included) per client per window; beyond: 451 4.7.1. */
    MOAT_INGRESS_RATE_RECIPIENTS: envInt(1, 10_000_000).default(6_000),
    /** Bound on one Redis round trip of a rate limit or greylisting check; beyond it the check passes. */
    MOAT_INGRESS_REDIS_CHECK_TIMEOUT_MS: envInt(10, 30_000).default(500),
    /**
     * DNS blocklists, comma-separated; `zone=127.0.0.2,127.0.0.3` counts only those answers as
     * a listing (default: any 127.0.0.0/8 answer but 127.255.255.x). Empty: no DNSBL lookups.
     */
    MOAT_INGRESS_DNSBL_ZONES: z
      .string()
      .default('')
      .transform((v, ctx) => {
        try {
          return parseDnsblZones(v);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
          return z.NEVER;
        }
      }),
    /** Bound on one DNSBL lookup; a zone that does not answer in time counts as not listing the client. */
    MOAT_INGRESS_DNSBL_TIMEOUT_MS: envInt(50, 30_000).default(2_000),
    /** How long a DNSBL answer is cached per client address. */
    MOAT_INGRESS_DNSBL_CACHE_MS: envInt(0, 86_400_000).default(300_000),
    /** SMTP refusals are published to message tracking every this often (and counted in the log). */
    MOAT_INGRESS_REJECTION_FLUSH_MS: envInt(100, 60_000).default(1_000),
    /** Tracking events for refusals per flush at most (per ingress process); the rest are only counted in the log. */
    MOAT_INGRESS_REJECTION_EVENTS_MAX: envInt(1, 100_000).default(200),
  })
  .refine((c) => (c.MOAT_TLS_CERT_FILE === undefined) === (c.MOAT_TLS_KEY_FILE === undefined), {
    message: 'MOAT_TLS_CERT_FILE and MOAT_TLS_KEY_FILE must be set together',
    path: ['MOAT_TLS_CERT_FILE'],
  })
  .refine((c) => distinctPorts([c.MOAT_SMTP_PORT, c.MOAT_SUBMISSION_PORT, c.MOAT_SUBMISSIONS_PORT]), {
    message: 'MOAT_SMTP_PORT, MOAT_SUBMISSION_PORT and MOAT_SUBMISSIONS_PORT must differ (0 and -1 excepted)',
    path: ['MOAT_SUBMISSION_PORT'],
  });

/** Fixed ports of the listeners must differ; 0 (a free port each) and -1 (off) may repeat. */
function distinctPorts(ports: number[]): boolean {
  const fixed = ports.filter((p) => p > 0);
  return new Set(fixed).size === fixed.length;
}

export type Config = z.infer<typeof configSchema>;
