import type { Logger } from 'pino';
import { migrate } from '@moat/store';

/** Applies pending migrations; returns the exit code (the error is logged). */
export async function runMigrations(opts: { databaseUrl: string; schema: string; log: Logger }): Promise<number> {
  try {
    const applied = await migrate(opts);
    opts.log.info({ applied }, applied.length > 0 ? `applied ${applied.length} migration(s) to schema ${opts.schema}` : `schema ${opts.schema} is up to date`);
    return 0;
  } catch (err) {
    opts.log.error({ err: (err as Error).message }, 'migrations failed');
    return 1;
  }
}
