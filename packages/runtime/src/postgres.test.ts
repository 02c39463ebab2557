import pg from 'pg';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createPgPool, inTransaction, isPostgresDataError } from './postgres.js';

const silent = pino({ level: 'silent' });

const nulError = () => Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' });

describe('isPostgresDataError', () => {
  it('when an error carries SQLSTATE class 22 or 23, then it is a data error; other codes are not', () => {
    expect(isPostgresDataError(nulError())).toBe(true);
    expect(isPostgresDataError({ code: '23505' })).toBe(true);
    expect(isPostgresDataError({ code: '57P01' })).toBe(false);
    expect(isPostgresDataError(new Error('x'))).toBe(false);
    expect(isPostgresDataError(null)).toBe(false);
  });

  it('when a repository wrapped the driver error, then the cause decides', () => {
    expect(isPostgresDataError(Object.assign(new Error('store write failed'), { code: 'STORE_WRITE_FAILED', cause: { code: '22021' } }))).toBe(true);
    expect(isPostgresDataError(Object.assign(new Error('store write failed'), { code: 'STORE_WRITE_FAILED', cause: { code: '08006' } }))).toBe(false);
  });
});

describe('inTransaction', () => {
  it('when the connection is killed between two statements (Postgres restarting), then the call rejects and the process lives on', async () => {
    const url = process.env.MOAT_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
    const pool = createPgPool({ url, schema: 'public', max: 2, log: silent, applicationName: 'moat-intx-test' });
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      const call = inTransaction(pool, async (client) => {
        const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
        // The backend dies while this transaction waits between statements.
        await admin.query('SELECT pg_terminate_backend($1)', [pid]);
        await new Promise((r) => setTimeout(r, 200));
        return client.query('SELECT 1');
      });
      await expect(call).rejects.toThrow();
      await new Promise((r) => setTimeout(r, 50));
      expect(uncaught).toEqual([]);
      // The pool hands out a working connection afterwards (the broken one was dropped).
      expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
    } finally {
      process.off('uncaughtException', onUncaught);
      await admin.end();
      await pool.end();
    }
  });
});
