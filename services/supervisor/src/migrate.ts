import { z } from 'zod';
import { baseConfigShape, configOrExit, createLogger } from '@moat/runtime';
import { runMigrations } from './migrations.js';

// `pnpm migrate`, and the migration Job/container: apply pending migrations, then exit.
const config = configOrExit(z.object(baseConfigShape));
const log = createLogger('migrate', config.MOAT_LOG_LEVEL);
const code = await runMigrations({ databaseUrl: config.MOAT_DATABASE_URL, schema: config.MOAT_DB_SCHEMA, log });
// Let pino flush before exiting.
setTimeout(() => process.exit(code), 50);
