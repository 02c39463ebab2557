import { z } from 'zod';
import { baseConfigShape, envInt } from '@moat/runtime';

/**
 * The archive records metadata and the quarantine (bodies stay in the message store, previews
 * arrive sealed): no key, no DNS.
 */
export const configSchema = z.object({
  ...baseConfigShape,
  /** Days a quarantined message waits for a decision; then it expires and its body is deleted. */
  MOAT_QUARANTINE_RETENTION_DAYS: envInt(1, 3_650).default(30),
  /** How often the retention sweep looks for expired quarantine (each replica; they share the work). */
  MOAT_QUARANTINE_SWEEP_INTERVAL_MS: envInt(1_000, 86_400_000).default(600_000),
});
export type Config = z.infer<typeof configSchema>;
