import { z } from 'zod';
import { baseConfigShape, envInt } from '@moat/runtime';

export const configSchema = z.object({
  ...baseConfigShape,
  MOAT_HTTP_HOST: z.string().default('0.0.0.0'),
  /** The partner API and the web UI; 0 picks a free port (tests). */
  MOAT_HTTP_PORT: envInt(0, 65535).default(8080),
  /** Registered as an operator API key on start (only its sha256 is stored). A secret: no default. */
  MOAT_BOOTSTRAP_TOKEN: z.string().min(24, 'must be at least 24 characters (openssl rand -hex 24)').optional(),
  /** Largest JSON request body accepted, in bytes (larger: 413). */
  MOAT_HTTP_BODY_LIMIT_BYTES: envInt(1_024, 10 * 1024 * 1024).default(100 * 1024),
});
export type Config = z.infer<typeof configSchema>;
