import { z } from 'zod';
import { baseConfigShape, digestLinkKey, digestLinkPreviousKeys, envInt, quarantinePreviewKeyShape } from '@moat/runtime';

export const configSchema = z.object({
  ...baseConfigShape,
  // The quarantine preview key only: never the master key, which would open every stored message.
  ...quarantinePreviewKeyShape,
  MOAT_HTTP_HOST: z.string().default('0.0.0.0'),
  /** The partner API and the web UI; 0 picks a free port (tests). */
  MOAT_HTTP_PORT: envInt(0, 65535).default(8080),
  /** Registered as an operator API key on start (only its sha256 is stored). A secret: no default. */
  MOAT_BOOTSTRAP_TOKEN: z.string().min(24, 'must be at least 24 characters (openssl rand -hex 24)').optional(),
  /** Largest JSON request body accepted, in bytes (larger: 413). */
  MOAT_HTTP_BODY_LIMIT_BYTES: envInt(1_024, 10 * 1024 * 1024).default(100 * 1024),
  /** Subnet checks: how long the senders get to answer; missing probes are then reported `timeout`. */
  MOAT_SUBNET_CHECK_DEADLINE_MS: envInt(1_000, 600_000).default(120_000),
  /** Subnet checks a tenant may start per window (each one opens connections to its servers from every pool). */
  MOAT_SUBNET_CHECK_RATE_LIMIT: envInt(1, 10_000).default(10),
  MOAT_SUBNET_CHECK_RATE_WINDOW_MS: envInt(1_000, 86_400_000).default(3_600_000),
  /** Subnet checks older than this are deleted. */
  MOAT_SUBNET_CHECK_RETENTION_DAYS: envInt(1, 3_650).default(30),
  /** Verifies quarantine digest release links (/digest/release/…); unset: those pages answer 404. A secret: no default. */
  MOAT_DIGEST_LINK_KEY: digestLinkKey.optional(),
  /** Earlier link keys still accepted after a rotation (links already sent keep working until they expire). */
  MOAT_DIGEST_LINK_PREVIOUS_KEYS: digestLinkPreviousKeys.optional(),
  /** Read only to tell that digests are on (the archive sends them): the link key is then required here too. */
  MOAT_DIGEST_INTERVAL_MS: envInt(60_000, 30 * 86_400_000).optional(),
}).superRefine((c, ctx) => {
  if (c.MOAT_DIGEST_INTERVAL_MS !== undefined && c.MOAT_DIGEST_LINK_KEY === undefined) {
    ctx.addIssue({ code: 'custom', path: ['MOAT_DIGEST_LINK_KEY'], message: 'required when MOAT_DIGEST_INTERVAL_MS is set (quarantine digests are on): their release links are verified here' });
  }
});
export type Config = z.infer<typeof configSchema>;
