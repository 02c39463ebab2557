import { z } from 'zod';
import { baseConfigShape, digestLinkKey, envInt, masterKeyShape } from '@moat/runtime';

/**
 * The archive records metadata and the quarantine (bodies stay in the message store, previews
 * arrive sealed): no key, no DNS — unless quarantine digests are on (MOAT_DIGEST_INTERVAL_MS):
 * it then writes each digest into the message store, which takes the master key, and signs its
 * release links with MOAT_DIGEST_LINK_KEY.
 */
export const configSchema = z
  .object({
    ...baseConfigShape,
    ...masterKeyShape,
    // Only needed (and then required) for digests: the archive reads no stored body.
    MOAT_MASTER_KEY: masterKeyShape.MOAT_MASTER_KEY.optional(),
    /** Days a quarantined message waits for a decision; then it expires and its body is deleted. */
    MOAT_QUARANTINE_RETENTION_DAYS: envInt(1, 3_650).default(30),
    /** How often the retention sweep looks for expired quarantine (each replica; they share the work). */
    MOAT_QUARANTINE_SWEEP_INTERVAL_MS: envInt(1_000, 86_400_000).default(600_000),
    /** Quarantine digests: the period (a digest per mailbox with news per period). Unset: no digests. */
    MOAT_DIGEST_INTERVAL_MS: envInt(60_000, 30 * 86_400_000).optional(),
    /** Signs the digests' release links (the gateway verifies them with the same key). A secret: no default. */
    MOAT_DIGEST_LINK_KEY: digestLinkKey.optional(),
    /** The digests' From address. */
    MOAT_DIGEST_FROM: z.email().optional(),
    /** Where users reach the gateway: release links are `${MOAT_PUBLIC_URL}/digest/release/…`. */
    MOAT_PUBLIC_URL: z
      .url()
      .refine((v) => /^https?:\/\//.test(v), 'must be an http(s) URL')
      .transform((v) => v.replace(/\/+$/, ''))
      .optional(),
    /** How long a release link works (at most until the message expires from the quarantine). */
    MOAT_DIGEST_LINK_TTL_HOURS: envInt(1, 24 * 90).default(168),
    /** Messages listed in one digest (the rest are counted, not listed). */
    MOAT_DIGEST_MAX_ITEMS: envInt(1, 1_000).default(100),
  })
  .superRefine((c, ctx) => {
    if (c.MOAT_DIGEST_INTERVAL_MS === undefined) return;
    const needed = { MOAT_DIGEST_LINK_KEY: c.MOAT_DIGEST_LINK_KEY, MOAT_DIGEST_FROM: c.MOAT_DIGEST_FROM, MOAT_PUBLIC_URL: c.MOAT_PUBLIC_URL, MOAT_MASTER_KEY: c.MOAT_MASTER_KEY };
    for (const [name, value] of Object.entries(needed)) {
      if (value === undefined) ctx.addIssue({ code: 'custom', path: [name], message: 'required when MOAT_DIGEST_INTERVAL_MS is set (quarantine digests are on)' });
    }
  });
export type Config = z.infer<typeof configSchema>;
