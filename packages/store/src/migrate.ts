import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import type { Logger } from '@moat/runtime';

export const migrationsDir = fileURLToPath(new URL('../migrations', import.meta.url));

/** Creates the database named in the URL when it does not exist yet (first start on a fresh server). */
export async function ensureDatabase(databaseUrl: string, log: Logger): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!name) return;
  const probe = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
  try {
    await probe.connect();
    return;
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000') throw err; // 3D000: invalid_catalog_name
  } finally {
    await probe.end().catch(() => {});
  }
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 5_000 });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
    log.info({ database: name }, 'created database');
  } catch (err) {
    if ((err as { code?: string }).code !== '42P04') throw err; // created concurrently
  } finally {
    await admin.end();
  }
}

/** Applies pending migrations under an advisory lock (concurrent starts are safe). */
export async function migrate(opts: { databaseUrl: string; schema: string; log: Logger }): Promise<string[]> {
  await ensureDatabase(opts.databaseUrl, opts.log);
  const applied = await runner({
    databaseUrl: opts.databaseUrl,
    dir: migrationsDir,
    direction: 'up',
    migrationsTable: 'pgmigrations',
    schema: opts.schema,
    createSchema: true,
    // Migrations are written to be independent of each other's order (each creates or alters its
    // own tables), because branches land in any order: a database that already ran a later one
    // (a deployment of an intermediate commit) still gets the earlier ones it missed, in order.
    checkOrder: false,
    // Several processes (or test files) may start at once: wait for the lock instead of failing.
    advisoryLockMode: 'wait',
    log: (msg: string) => opts.log.debug(msg),
    logger: { debug: () => {}, info: (m: string) => opts.log.debug(m), warn: (m: string) => opts.log.warn(m), error: (m: string) => opts.log.error(m) },
  });
  return applied.map((m) => m.name);
}
