import { randomBytes } from 'node:crypto';

export interface StackEnvOptions {
  /** Namespace, schema and Redis prefix of this stack (unique per run). */
  id: string;
  smtpPort: number;
  /** Submission ports of ingress (STARTTLS + AUTH, implicit TLS); left out: off (-1), so runs never collide on 2587/2465. */
  submissionPort?: number;
  submissionsPort?: number;
  httpPort: number;
  /** First admin port (/livez, /readyz); the supervisor numbers the services from it. */
  adminPortBase: number;
  bootstrapToken: string;
  databaseUrl: string;
}

/**
 * The environment of a whole stack run under the supervisor by the benchmark or the chaos
 * programs: isolated by `id` (broker namespace, Postgres schema, Redis prefix) so that runs
 * never collide, listening on loopback, static DNS (the machine's resolver is never asked), no
 * reverse lookups, a fresh master key, and only warnings and errors logged.
 */
export function isolatedStackEnv(o: StackEnvOptions): Record<string, string> {
  return {
    MOAT_NAMESPACE: o.id,
    MOAT_DB_SCHEMA: o.id,
    MOAT_REDIS_PREFIX: `${o.id}:`,
    MOAT_DATABASE_URL: o.databaseUrl,
    MOAT_MASTER_KEY: randomBytes(32).toString('base64'),
    MOAT_QUARANTINE_PREVIEW_KEY: randomBytes(32).toString('base64'),
    MOAT_BOOTSTRAP_TOKEN: o.bootstrapToken,
    MOAT_DNS_MODE: 'static',
    MOAT_SMTP_PORT: String(o.smtpPort),
    MOAT_SUBMISSION_PORT: String(o.submissionPort ?? -1),
    MOAT_SUBMISSIONS_PORT: String(o.submissionsPort ?? -1),
    MOAT_SMTP_HOST: '127.0.0.1',
    MOAT_HTTP_PORT: String(o.httpPort),
    MOAT_HTTP_HOST: '127.0.0.1',
    MOAT_ADMIN_PORT_BASE: String(o.adminPortBase),
    MOAT_LOG_LEVEL: 'warn',
    MOAT_REVERSE_DNS: 'false',
    // All the load comes from one loopback client: ingress' per-client rate limits still run
    // (their Redis cost is part of what is measured) but never trip.
    MOAT_INGRESS_RATE_CONNECTIONS: '10000000',
    MOAT_INGRESS_RATE_MESSAGES: '10000000',
    MOAT_INGRESS_RATE_RECIPIENTS: '10000000',
  };
}
