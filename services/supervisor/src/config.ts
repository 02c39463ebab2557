import { z } from 'zod';
import { baseConfigShape, envInt, envList, masterKeyShape, quarantinePreviewKeyShape } from '@moat/runtime';
import { parseSenders, SendersSyntaxError } from './senders.js';

/** The services the supervisor runs, in the order their admin ports are assigned. */
export const statelessServices = ['ingress', 'filter', 'archive', 'router', 'tracker', 'gateway'] as const;
export type StatelessService = (typeof statelessServices)[number];
export const serviceKinds = [...statelessServices, 'sender'] as const;
export type ServiceKind = (typeof serviceKinds)[number];

const senders = z
  .string()
  .default('default=127.0.0.1')
  .transform((value, ctx) => {
    try {
      return parseSenders(value);
    } catch (err) {
      if (!(err instanceof SendersSyntaxError)) throw err;
      for (const problem of err.problems) ctx.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
  });

export const configSchema = z.object({
  ...baseConfigShape,
  /** `production` turns a missing secret into a config error instead of generating a dev one. */
  MOAT_ENV: z.enum(['development', 'test', 'production']).default('development'),
  /** Secrets: taken from the environment; outside production, generated once into MOAT_STATE_DIR. */
  MOAT_MASTER_KEY: masterKeyShape.MOAT_MASTER_KEY.optional(),
  /** Quarantine previews (filter seals, gateway opens); outside production generated like the master key. */
  MOAT_QUARANTINE_PREVIEW_KEY: quarantinePreviewKeyShape.MOAT_QUARANTINE_PREVIEW_KEY,
  // Same rule as the gateway's, so a token the supervisor accepts is one the gateway accepts.
  MOAT_BOOTSTRAP_TOKEN: z.string().min(24, 'must be at least 24 characters (openssl rand -hex 24)').optional(),
  /** Where dev secrets live (default: `.moat/` at the repository root; gitignored). */
  MOAT_STATE_DIR: z.string().optional(),
  /** One sender process per entry: `pool=sourceIp,pool=sourceIp`. */
  MOAT_SENDERS: senders,
  /** Which services to run (default: all). */
  MOAT_SERVICES: envList.pipe(z.array(z.enum(serviceKinds)).min(1)).default([...serviceKinds]),
  /** Admin ports (/livez, /readyz): ingress gets the base, then filter, …; senders follow gateway. */
  MOAT_ADMIN_PORT_BASE: envInt(1, 65_000).default(9101),
  /** Directory holding `<service>/dist/main.js` (default: the repository's services/). */
  MOAT_SERVICES_DIR: z.string().optional(),
  /** Restart back-off: the first delay, doubling per consecutive fast crash, up to the cap. */
  MOAT_RESTART_MIN_DELAY_MS: envInt(10, 600_000).default(1_000),
  MOAT_RESTART_MAX_DELAY_MS: envInt(10, 3_600_000).default(30_000),
  /** A process that ran at least this long before exiting counts as stable: its crash count resets. */
  MOAT_RESTART_STABLE_MS: envInt(0, 3_600_000).default(10_000),
  /** Consecutive fast crashes after which the supervisor gives up and stops the stack. */
  MOAT_RESTART_MAX_FAST_CRASHES: envInt(1, 1_000).default(6),
  /** How long to wait for every service's /readyz before saying which ones are not ready. */
  MOAT_READY_TIMEOUT_MS: envInt(1_000, 3_600_000).default(60_000),
  /** `pretty` renders the services' JSON log lines for a terminal; `raw` passes them through. */
  MOAT_SUPERVISOR_OUTPUT: z.enum(['pretty', 'raw']).default('pretty'),
  /**
   * Node flags for every service, space-separated (e.g. add `--cpu-prof --cpu-prof-dir=/tmp/prof`
   * to profile). The default caps V8's young generation at 8 MiB semi-spaces instead of 16: the
   * services allocate short-lived buffers per message, and with the larger nursery a busy filter
   * or ingress peaked near 190 MiB RSS at 100 KiB mail (bench: 30–40 MiB less per service, CPU
   * per 4 KiB message unchanged within noise). Setting the variable replaces the default.
   */
  MOAT_NODE_ARGS: z.string().default('--max-semi-space-size=8'),
  /** The services' listening ports, only to print where the stack answers (they read them themselves). */
  MOAT_SMTP_PORT: envInt(1, 65_535).default(2525),
  MOAT_SUBMISSION_PORT: envInt(-1, 65_535).default(2587),
  MOAT_HTTP_PORT: envInt(1, 65_535).default(8080),
});
export type Config = z.infer<typeof configSchema>;

/**
 * The environment the services inherit. The supervisor passes its whole environment on (each
 * service reads its own MOAT_* variables), so this is the one other place besides loadConfig
 * that looks at process.env.
 */
export function processEnvironment(): Record<string, string | undefined> {
  return { ...process.env };
}
