import { hostname } from 'node:os';
import { z } from 'zod';
import { baseConfigShape, dnsConfigShape, envBoolean, envInt, masterKeyShape } from '@moat/runtime';

/** A host name as it may appear in the banner and in Received headers (RFC 1123 labels). */
const hostName = z
  .string()
  .max(253)
  .regex(/^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/, 'must be a host name');

export const configSchema = z
  .object({
    ...baseConfigShape,
    ...masterKeyShape,
    ...dnsConfigShape,
    /** Address the SMTP listener binds. */
    MOAT_SMTP_HOST: z.string().min(1).default('0.0.0.0'),
    /** SMTP port (MX traffic); 0 picks a free port (tests). */
    MOAT_SMTP_PORT: envInt(0, 65535).default(2525),
    /** Name in the 220 banner and in the `by` clause of the Received header. */
    MOAT_SMTP_HOSTNAME: hostName.default(hostname()),
    /** Concurrent SMTP connections; the next one gets 421 (RFC 5321 §3.8). */
    MOAT_SMTP_MAX_CLIENTS: envInt(1, 100_000).default(1_000),
    /** How long stop() lets open sessions finish before answering 421 to the stragglers. */
    MOAT_SMTP_CLOSE_TIMEOUT_MS: envInt(0, 600_000).default(10_000),
    /** Look up (and forward-confirm) the client's PTR name for the Received header. */
    MOAT_REVERSE_DNS: envBoolean.default(true),
    /** Bound of the reverse lookup; a slow resolver yields "unknown", never a stalled session. */
    MOAT_REVERSE_DNS_TIMEOUT_MS: envInt(50, 30_000).default(1_500),
    /** PEM certificate chain and key for STARTTLS; both or neither (then a dev certificate is generated). */
    MOAT_TLS_CERT_FILE: z.string().min(1).optional(),
    MOAT_TLS_KEY_FILE: z.string().min(1).optional(),
    /** How long a protected-domain lookup is cached (0: no cache). */
    MOAT_DOMAIN_CACHE_MS: envInt(0, 3_600_000).default(5_000),
    /** Recipients per message (RFC 5321 §4.5.3.1.8 requires at least 100). */
    MOAT_MAX_RECIPIENTS: envInt(1, 10_000).default(100),
    /** Largest message accepted, in bytes, advertised in EHLO SIZE (RFC 1870). */
    MOAT_MAX_MESSAGE_BYTES: envInt(1_024, 1_073_741_824).default(26_214_400),
    /** Bound on storing + publishing one message before the client gets 451 instead of waiting. */
    MOAT_INTAKE_TIMEOUT_MS: envInt(1_000, 600_000).default(60_000),
  })
  .refine((c) => (c.MOAT_TLS_CERT_FILE === undefined) === (c.MOAT_TLS_KEY_FILE === undefined), {
    message: 'MOAT_TLS_CERT_FILE and MOAT_TLS_KEY_FILE must be set together',
    path: ['MOAT_TLS_CERT_FILE'],
  });

export type Config = z.infer<typeof configSchema>;
