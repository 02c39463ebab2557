import { randomBytes } from 'node:crypto';
import pg from 'pg';
import amqp from 'amqplib';
import { pino } from 'pino';
import { migrate } from '@moat/store';

export const silentLog = pino({ level: process.env.MOAT_TEST_LOG_LEVEL ?? 'silent' });

export const servicesUrls = {
  amqp: process.env.MOAT_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
  // Tests use the machine's `test` database, with a schema per run.
  database: process.env.MOAT_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  redis: process.env.MOAT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
};

export interface TestEnv {
  id: string;
  env: Record<string, string>;
  cleanup: () => Promise<void>;
}

/**
 * An isolated environment for one test file: its own broker namespace, Postgres schema (with
 * migrations applied) and Redis key prefix, so runs never collide and never see leftovers.
 */
export async function createTestEnv(extra: Record<string, string> = {}): Promise<TestEnv> {
  const id = `t${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const env: Record<string, string> = {
    MOAT_AMQP_URL: servicesUrls.amqp,
    MOAT_DATABASE_URL: servicesUrls.database,
    MOAT_REDIS_URL: servicesUrls.redis,
    MOAT_NAMESPACE: id,
    MOAT_DB_SCHEMA: id,
    MOAT_REDIS_PREFIX: `${id}:`,
    MOAT_MASTER_KEY: randomBytes(32).toString('base64'),
    MOAT_QUARANTINE_PREVIEW_KEY: randomBytes(32).toString('base64'),
    MOAT_DNS_MODE: 'static',
    MOAT_LOG_LEVEL: process.env.MOAT_TEST_LOG_LEVEL ?? 'silent',
    MOAT_ADMIN_PORT: '-1',
    MOAT_BOOTSTRAP_TOKEN: `op_${randomBytes(16).toString('hex')}`,
    ...extra,
  };
  await migrate({ databaseUrl: env.MOAT_DATABASE_URL!, schema: id, log: silentLog });
  return {
    id,
    env,
    cleanup: async () => {
      await deleteBrokerNamespace(env.MOAT_AMQP_URL!, id).catch(() => {});
      const client = new pg.Client({ connectionString: env.MOAT_DATABASE_URL });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${id}" CASCADE`).catch(() => {});
      await client.end();
    },
  };
}

/** A pg pool on the test schema, for assertions. */
export function testPool(t: TestEnv): pg.Pool {
  const pool = new pg.Pool({ connectionString: t.env.MOAT_DATABASE_URL, options: `-c search_path=${t.id},public`, max: 4 });
  // A Postgres restart (the chaos suite, run on the same machine) ends idle connections: pg then
  // emits 'error' on the pool, which without a listener is an uncaught exception that fails the
  // run. The pool drops the connection by itself and the next query opens a new one.
  pool.on('error', () => {});
  return pool;
}

/** Polls until fn returns a truthy value, or throws with the last value after timeoutMs. */
export async function eventually<T>(fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 15_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Deletes every queue and exchange of a test namespace, so runs leave nothing on the shared broker. */
export async function deleteBrokerNamespace(url: string, namespace: string, extraQueues: string[] = []): Promise<void> {
  const conn = await amqp.connect(url);
  try {
    // A sender declares its subnet-check queue(s) next to its delivery queue.
    const names = ['filter', 'archive', 'router', 'tracker', 'parking', 'sender.default', 'subnet-check.default', 'subnet-check-outsider', ...extraQueues];
    for (const q of names) {
      const ch = await conn.createChannel();
      ch.on('error', () => {});
      await ch.deleteQueue(`${namespace}.${q}`).catch(() => {});
      await ch.close().catch(() => {});
    }
    for (const x of ['events', 'parking']) {
      const ch = await conn.createChannel();
      ch.on('error', () => {});
      await ch.deleteExchange(`${namespace}.${x}`).catch(() => {});
      await ch.close().catch(() => {});
    }
  } finally {
    await conn.close().catch(() => {});
  }
}
