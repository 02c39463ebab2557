import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { servicesUrls } from '@moat/testkit';
import { repoRoot } from './helpers.js';

const schema = `mg${randomBytes(4).toString('hex')}`;
const migrateEntry = fileURLToPath(new URL('../src/migrate.ts', import.meta.url));

afterAll(async () => {
  const client = new pg.Client({ connectionString: servicesUrls.database });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

function runMigrate(env: Record<string, string>) {
  return spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', migrateEntry], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', MOAT_DATABASE_URL: servicesUrls.database, MOAT_DB_SCHEMA: schema, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('migrate entry (pnpm migrate, the Kubernetes Job, the compose migrate service)', () => {
  it('when run on an empty schema, then it applies the migrations and exits 0; run again, then it has nothing to do', async () => {
    const first = runMigrate({});
    expect(first.status, first.stdout + first.stderr).toBe(0);
    expect(first.stdout).toMatch(/applied \d+ migration\(s\) to schema/);
    const client = new pg.Client({ connectionString: servicesUrls.database });
    await client.connect();
    const { rows } = await client.query<{ name: string }>(`SELECT name FROM "${schema}".pgmigrations ORDER BY id`);
    await client.end();
    expect(rows[0]?.name).toBe('1732700000000_initial');
    const second = runMigrate({});
    expect(second.status).toBe(0);
    expect(second.stdout).toContain(`schema ${schema} is up to date`);
  });

  it('when Postgres cannot be reached, then it exits 1 and says the migrations failed', () => {
    const result = runMigrate({ MOAT_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/moat' });
    expect(result.status).toBe(1);
    expect(result.stdout).toContain('migrations failed');
  });
});
