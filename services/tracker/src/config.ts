import { z } from 'zod';
import { baseConfigShape, envInt } from '@moat/runtime';

export const configSchema = z.object({
  ...baseConfigShape,
  /** Events written per transaction at most (one multi-row statement per table). */
  MOAT_TRACKER_BATCH_SIZE: envInt(1, 5_000).default(200),
  /** How long the first event of a batch waits for company before the batch is written. */
  MOAT_TRACKER_BATCH_WAIT_MS: envInt(0, 10_000).default(20),
});
export type Config = z.infer<typeof configSchema>;
