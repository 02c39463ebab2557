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

/**
 * Runs fn in a transaction; rolls back on any error. A checked-out client has no listener of the
 * pool's: a connection that dies between two statements (Postgres restarting) emits 'error' on
 * the client, which would kill the process. The listener keeps that to the failing statement,
 * and a client whose transaction failed is destroyed rather than returned to the pool broken.
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let connectionError: Error | null = null;
  const onError = (err: Error) => (connectionError = err);
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.off('error', onError);
    // release(err) closes the connection instead of pooling it (pg-pool also drops a client
    // that is no longer queryable); after a data error the connection is fine and is kept.
    client.release(connectionError ?? undefined);
  }
}

/**
 * True when Postgres refused the data itself — SQLSTATE class 22 (data exception, e.g. a NUL
 * byte in text) or 23 (integrity constraint violation) — rather than being unreachable or
 * failing transiently. Only then is it worth retrying each item of a failed batch alone, so
 * that one bad item does not fail the others with it. Looks through one level of `cause`,
 * since repositories wrap driver errors in a MoatError.
 */
export function isPostgresDataError(err: unknown): boolean {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null;
  return [e?.code, e?.cause?.code].some((code) => typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code));
}
