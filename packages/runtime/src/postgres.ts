import pg from 'pg';
import type { Logger } from './logger.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/**
 * A Postgres pool whose connections all use Moat's schema (search_path), so that test runs
 * can each have a schema of their own on one database.
 */
export function createPgPool(opts: { url: string; schema: string; max: number; log: Logger; applicationName: string }): pg.Pool {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.max,
    application_name: opts.applicationName,
    options: `-c search_path=${opts.schema},public`,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
  });
  // An idle client losing its connection emits here; without a listener the process would die.
  pool.on('error', (err) => opts.log.warn({ err: err.message }, 'postgres idle client error'));
  return pool;
}

/** Runs fn in a transaction; rolls back on any error. */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
