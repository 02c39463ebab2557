import type { z } from 'zod';
import { Broker } from './amqp.js';
import { configOrExit, redactConfig, type BaseConfig } from './config.js';
import { HealthServer } from './health.js';
import { createLogger, type Logger } from './logger.js';
import { createPgPool, type Pool } from './postgres.js';
import { createRedis, type Redis } from './redis.js';
import { Shutdown } from './shutdown.js';
import { startTelemetry } from './telemetry.js';

/** What a service's start() returns: stop() stops accepting, drains, and closes everything. */
export interface RunningService {
  stop(): Promise<void>;
}

export interface Dependencies {
  log: Logger;
  health: HealthServer;
  /** The admin port actually bound (-1 when off). */
  adminPort: number;
  broker: Broker;
  pool: Pool;
  redis: Redis;
  /** Closes broker, Redis and Postgres (in that order) and the admin server. */
  close(): Promise<void>;
}

/**
 * Connects a service to RabbitMQ, Postgres and Redis, registers their readiness checks and
 * starts the admin server (/livez, /readyz). Rejects, naming the URL, when one is unreachable:
 * a service never serves traffic before every dependency is connected.
 */
export async function connectDependencies(name: string, config: BaseConfig, log: Logger): Promise<Dependencies> {
  const health = new HealthServer();
  const broker = new Broker({ url: config.MOAT_AMQP_URL, namespace: config.MOAT_NAMESPACE, producer: name, log });
  const pool = createPgPool({ url: config.MOAT_DATABASE_URL, schema: config.MOAT_DB_SCHEMA, max: config.MOAT_DB_POOL_SIZE, log, applicationName: `moat-${name}` });
  const redis = createRedis({ url: config.MOAT_REDIS_URL, prefix: config.MOAT_REDIS_PREFIX, log });
  const redacted = redactConfig(config as unknown as Record<string, unknown>);
  try {
    await broker.connect();
  } catch (err) {
    await pool.end().catch(() => {});
    redis.disconnect();
    throw new Error(`cannot reach RabbitMQ at ${String(redacted.MOAT_AMQP_URL)}: ${(err as Error).message}`);
  }
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    await broker.close();
    await pool.end().catch(() => {});
    redis.disconnect();
    throw new Error(`cannot reach Postgres at ${String(redacted.MOAT_DATABASE_URL)}: ${(err as Error).message}`);
  }
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    await broker.close();
    await pool.end().catch(() => {});
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${String(redacted.MOAT_REDIS_URL)}: ${(err as Error).message}`);
  }
  health.addCheck('amqp', () => broker.connected);
  health.addCheck('postgres', async () => (await pool.query('SELECT 1')).rowCount === 1);
  health.addCheck('redis', () => redis.status === 'ready');
  const adminPort = await health.listen(config.MOAT_ADMIN_PORT, config.MOAT_ADMIN_HOST);
  return {
    log,
    health,
    adminPort,
    broker,
    pool,
    redis,
    async close() {
      health.markShuttingDown();
      await broker.close();
      redis.disconnect();
      await pool.end().catch(() => {});
      await health.close();
    },
  };
}

/**
 * The whole of a service's main.ts: parse config (exit 78 listing every bad variable), build the
 * logger, start, and stop in order on SIGTERM/SIGINT within the configured bound.
 */
export async function runMain<S extends z.ZodObject>(
  name: string,
  schema: S,
  start: (config: z.infer<S>, log: Logger) => Promise<RunningService>,
): Promise<void> {
  const config = configOrExit(schema);
  const log = createLogger(name, (config as unknown as BaseConfig).MOAT_LOG_LEVEL);
  const shutdown = new Shutdown(log, (config as unknown as BaseConfig).MOAT_SHUTDOWN_TIMEOUT_MS);
  shutdown.installSignalHandlers();
  const stopTelemetry = await startTelemetry(name, (config as unknown as BaseConfig).OTEL_EXPORTER_OTLP_ENDPOINT, log);
  try {
    const running = await start(config, log);
    shutdown.register('service', () => running.stop());
    shutdown.register('telemetry', stopTelemetry);
    log.info('started');
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'failed to start');
    // Give pino a tick to flush before exiting.
    setTimeout(() => process.exit(1), 50);
  }
}
