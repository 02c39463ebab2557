import amqp from 'amqplib';
import { Redis } from 'ioredis';
import pg from 'pg';

/** One dependency the stack cannot run without. */
export interface Dependency {
  name: 'RabbitMQ' | 'Postgres' | 'Redis';
  variable: 'MOAT_AMQP_URL' | 'MOAT_DATABASE_URL' | 'MOAT_REDIS_URL';
  url: string;
  /** The docker compose service that provides it. */
  composeService: 'rabbitmq' | 'postgres' | 'redis';
  /** How to start it on a Debian machine with the distribution's package. */
  debianStart: string;
  /** The URL that reaches the docker compose service from the host (credentials from .env). */
  composeUrl: string;
}

export interface PreflightFailure {
  dependency: Dependency;
  error: string;
}

export interface PreflightUrls {
  MOAT_AMQP_URL: string;
  MOAT_DATABASE_URL: string;
  MOAT_REDIS_URL: string;
}

export function dependenciesOf(urls: PreflightUrls): Dependency[] {
  return [
    {
      name: 'RabbitMQ',
      variable: 'MOAT_AMQP_URL',
      url: urls.MOAT_AMQP_URL,
      composeService: 'rabbitmq',
      debianStart: 'rabbitmq-server -detached',
      composeUrl: 'amqp://moat:$RABBITMQ_PASSWORD@127.0.0.1:5672',
    },
    {
      name: 'Postgres',
      variable: 'MOAT_DATABASE_URL',
      url: urls.MOAT_DATABASE_URL,
      composeService: 'postgres',
      debianStart: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start',
      composeUrl: 'postgres://moat:$POSTGRES_PASSWORD@127.0.0.1:5432/moat',
    },
    {
      name: 'Redis',
      variable: 'MOAT_REDIS_URL',
      url: urls.MOAT_REDIS_URL,
      composeService: 'redis',
      debianStart: 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
      composeUrl: 'redis://127.0.0.1:6379',
    },
  ];
}

export type Probe = (url: string, timeoutMs: number) => Promise<void>;

export const probes: Record<Dependency['name'], Probe> = {
  RabbitMQ: probeAmqp,
  Postgres: probePostgres,
  Redis: probeRedis,
};

/**
 * Connects to each dependency once, all at the same time, and returns every failure (not just
 * the first), so one run tells the operator everything that is missing. A real protocol
 * handshake, not a port check: a wrong password or vhost fails here too.
 */
export async function preflight(dependencies: readonly Dependency[], timeoutMs: number, probeFor: Record<Dependency['name'], Probe> = probes): Promise<PreflightFailure[]> {
  const results = await Promise.all(
    dependencies.map(async (dependency): Promise<PreflightFailure | null> => {
      try {
        await withTimeout(probeFor[dependency.name](dependency.url, timeoutMs), timeoutMs + 1_000, `no answer within ${timeoutMs} ms`);
        return null;
      } catch (err) {
        return { dependency, error: errorText(err) };
      }
    }),
  );
  return results.filter((r): r is PreflightFailure => r !== null);
}

/** What to print for the failures: the URL (password hidden), the error, how to start it. */
export function formatPreflightReport(failures: readonly PreflightFailure[]): string[] {
  if (failures.length === 0) return [];
  const lines: string[] = [];
  for (const { dependency, error } of failures) {
    lines.push(`cannot reach ${dependency.name} at ${redactUrl(dependency.url)} (${dependency.variable}): ${error}`);
    lines.push(`  start it (Debian):  ${dependency.debianStart}`);
    const password = dependency.composeUrl.includes('$') ? ', the password from .env' : '';
    lines.push(`  or with Docker:     docker compose up -d ${dependency.composeService}   (then ${dependency.variable}=${dependency.composeUrl}${password})`);
    lines.push(`  or set ${dependency.variable} to where it runs`);
  }
  lines.push('the stack needs RabbitMQ, Postgres and Redis (all three with Docker: docker compose up -d postgres redis rabbitmq)');
  return lines;
}

/** The URL with its password replaced by `***`, so it can be printed. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
}

async function probeAmqp(url: string, timeoutMs: number): Promise<void> {
  const conn = await amqp.connect(url, { timeout: timeoutMs });
  // The broker may close a connection right after open (e.g. a vhost without access): swallow it.
  conn.on('error', () => {});
  await conn.close();
}

/**
 * The database itself may not exist yet (migrations create it on first start): a server that
 * answers "no such database" is reached, and is then asked through its `postgres` database.
 */
async function probePostgres(url: string, timeoutMs: number): Promise<void> {
  try {
    await queryOnce(url, timeoutMs);
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000') throw err; // invalid_catalog_name
    const server = new URL(url);
    server.pathname = '/postgres';
    await queryOnce(server.toString(), timeoutMs);
  }
}

async function queryOnce(url: string, timeoutMs: number): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
  } finally {
    await client.end().catch(() => {});
  }
}

async function probeRedis(url: string, timeoutMs: number): Promise<void> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    // One attempt: the preflight reports, it does not wait for Redis to appear.
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
  });
  let lastError: Error | null = null;
  redis.on('error', (err: Error) => {
    lastError = err;
  });
  try {
    await redis.connect();
    const pong = await redis.ping();
    if (pong !== 'PONG') throw new Error(`unexpected PING answer ${pong}`);
  } catch (err) {
    throw lastError ?? err;
  } finally {
    redis.disconnect();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function errorText(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    // Node's happy-eyeballs connect reports one error per address tried.
    return err.errors.map((e) => errorText(e)).join('; ');
  }
  if (err instanceof Error) return err.message || (err as NodeJS.ErrnoException).code || err.name;
  return String(err);
}
