import { z } from 'zod';
import { baseConfigShape } from '@moat/runtime';

/** The archive records metadata only (bodies stay in the message store): no key, no DNS. */
export const configSchema = z.object({
  ...baseConfigShape,
});

export type Config = z.infer<typeof configSchema>;
