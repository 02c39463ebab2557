import { z } from 'zod';

/**
 * Config is one schema per service, parsed once at start-up, failing fast with every bad
 * variable named (STYLE.md, habit 3). This is the only module that reads process.env.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Booleans from the environment: only these spellings, so that "false" is never truthy. */
export const envBoolean = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes' || v === 'on');

export const envInt = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const envList = z
  .string()
  .transform((v) => v.split(',').map((s) => s.trim()).filter((s) => s.length > 0));

/** What every service connects to. Defaults are the localhost services of a dev machine. */
export const baseConfigShape = {
  MOAT_AMQP_URL: z.string().url().default('amqp://guest:guest@127.0.0.1:5672'),
  MOAT_DATABASE_URL: z.string().url().default('postgres://postgres@127.0.0.1:5432/moat'),
  MOAT_REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  /** Prefix of every exchange and queue name: lets several stacks (and test runs) share a broker. */
  MOAT_NAMESPACE: z.string().regex(/^[a-z][a-z0-9_-]{0,40}$/).default('moat'),
  /** Postgres schema holding Moat's tables (search_path). */
  MOAT_DB_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/).default('moat'),
  MOAT_REDIS_PREFIX: z.string().default('moat:'),
  MOAT_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Port of the /livez and /readyz endpoints; 0 picks a free one, -1 turns it off. */
  MOAT_ADMIN_PORT: envInt(-1, 65535).default(0),
  MOAT_ADMIN_HOST: z.string().default('127.0.0.1'),
  MOAT_SHUTDOWN_TIMEOUT_MS: envInt(100, 600_000).default(20_000),
  MOAT_DB_POOL_SIZE: envInt(1, 200).default(10),
  /** OTLP endpoint for traces and metrics; unset turns OpenTelemetry off. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.string().url().optional(),
};
export const baseConfigSchema = z.object(baseConfigShape);
export type BaseConfig = z.infer<typeof baseConfigSchema>;

/** The master key that wraps every message's data key (AES-256-GCM). A secret: no default. */
export const masterKeyShape = {
  MOAT_MASTER_KEY: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes, base64-encoded (openssl rand -base64 32)'),
  MOAT_MASTER_KEY_ID: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/).default('k1'),
  /** Earlier master keys still needed to read older messages: `id:base64,id:base64`. */
  MOAT_PREVIOUS_MASTER_KEYS: z
    .string()
    .default('')
    .refine(
      (v) => v === '' || v.split(',').every((p) => /^[A-Za-z0-9_-]{1,32}:/.test(p) && Buffer.from(p.slice(p.indexOf(':') + 1), 'base64').length === 32),
      'must be a comma-separated list of id:base64 (32-byte keys)',
    ),
};

/**
 * The quarantine preview key (filter and gateway only): seals the short text preview of a
 * quarantined message so that the gateway can show it without holding the master key, which
 * would open every stored message. Optional: without it no previews are made or shown.
 */
export const quarantinePreviewKeyShape = {
  MOAT_QUARANTINE_PREVIEW_KEY: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes, base64-encoded (openssl rand -base64 32)')
    .optional(),
  MOAT_QUARANTINE_PREVIEW_KEY_ID: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/).default('p1'),
  /** Earlier preview keys, so previews sealed before a rotation still open: `id:base64,id:base64`. */
  MOAT_PREVIOUS_QUARANTINE_PREVIEW_KEYS: z
    .string()
    .default('')
    .refine(
      (v) => v === '' || v.split(',').every((p) => /^[A-Za-z0-9_-]{1,32}:/.test(p) && Buffer.from(p.slice(p.indexOf(':') + 1), 'base64').length === 32),
      'must be a comma-separated list of id:base64 (32-byte keys)',
    ),
};

/**
 * The key that signs quarantine digest release links (HMAC-SHA256): the archive signs, the gateway
 * verifies. A secret: no default. Whoever holds it can mint a release link for any spam or policy
 * message, so it goes only to those two services.
 */
export const digestLinkKey = z
  .string()
  .refine((v) => /^[A-Za-z0-9+/_-]+={0,2}$/.test(v) && Buffer.from(v, 'base64').length >= 32, 'must be at least 32 bytes, base64-encoded (openssl rand -base64 32)');

/**
 * Keys that signed digest links before the current MOAT_DIGEST_LINK_KEY, still accepted by the
 * gateway (comma-separated, each like the key): rotate by moving the old key here, and drop it
 * once its links have expired (MOAT_DIGEST_LINK_TTL_HOURS after the rotation).
 */
export const digestLinkPreviousKeys = z
  .string()
  .refine(
    (v) => v.split(',').every((k) => /^[A-Za-z0-9+/_-]+={0,2}$/.test(k.trim()) && Buffer.from(k.trim(), 'base64').length >= 32),
    'must be a comma-separated list of keys, each at least 32 bytes, base64-encoded',
  );

const secretNames = /KEY|TOKEN|PASSWORD|SECRET/;

export function loadConfig<S extends z.ZodObject>(schema: S, env: Record<string, string | undefined> = process.env): z.infer<S> {
  // Empty strings count as unset, as in most shells' `VAR= cmd`.
  const cleaned: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') cleaned[key] = value;
  }
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = issue.path.join('.') || '(config)';
      return `${name}: ${issue.message}`;
    });
    throw new ConfigError(problems);
  }
  return parsed.data;
}

/** The effective config with secrets and URL passwords redacted, for --print-config and logs. */
export function redactConfig(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (secretNames.test(key) && key !== 'MOAT_MASTER_KEY_ID' && key !== 'MOAT_QUARANTINE_PREVIEW_KEY_ID') out[key] = value === undefined || value === '' ? value : '<redacted>';
    else if (typeof value === 'string' && /^[a-z]+:\/\/[^@/]*:[^@/]*@/.test(value)) out[key] = value.replace(/:\/\/([^:@/]*):[^@/]*@/, '://$1:<redacted>@');
    else out[key] = value;
  }
  return out;
}

/**
 * Service entry points call this first: it loads the config, or prints every problem and
 * exits 78 (EX_CONFIG). `--print-config` prints the effective config, redacted, and exits.
 */
export function configOrExit<S extends z.ZodObject>(schema: S, argv: string[] = process.argv, env: Record<string, string | undefined> = process.env): z.infer<S> {
  let config: z.infer<S>;
  try {
    config = loadConfig(schema, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }
  if (argv.includes('--print-config')) {
    process.stdout.write(`${JSON.stringify(redactConfig(config as Record<string, unknown>), null, 2)}\n`);
    process.exit(0);
  }
  return config;
}

/** DNS for every service: tests and benchmarks use `static` so the machine's resolver is never asked. */
export const dnsConfigShape = {
  MOAT_DNS_MODE: z.enum(['system', 'static']).default('system'),
  /** Resolver addresses for `system` mode (empty: the machine's resolv.conf). */
  MOAT_DNS_SERVERS: envList.default([]),
  /**
   * JSON file of records for `static` mode: { "name": { "TXT": [["v=spf1 …"]], "MX": [{ "exchange": …, "priority": … }] } };
   * a type may instead name a failure to simulate ("SERVFAIL", "TIMEOUT", …). See StaticZone in dns.ts.
   */
  MOAT_DNS_STATIC_FILE: z.string().optional(),
  MOAT_DNS_TIMEOUT_MS: envInt(100, 60_000).default(5_000),
};
