import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servicesUrls } from '@moat/testkit';
import { fakeServicesDir, freePortRange, runSupervisor } from './helpers.js';

const schemas: string[] = [];
const dirs: string[] = [];
let servicesDir: string;

beforeAll(() => {
  servicesDir = fakeServicesDir();
  dirs.push(servicesDir);
});

afterAll(async () => {
  const client = new pg.Client({ connectionString: servicesUrls.database });
  await client.connect();
  for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function isolatedEnv(extra: Record<string, string> = {}): Record<string, string> {
  const id = `sv${randomBytes(4).toString('hex')}`;
  schemas.push(id);
  const stateDir = mkdtempSync(join(tmpdir(), 'moat-state-'));
  dirs.push(stateDir);
  return {
    MOAT_AMQP_URL: servicesUrls.amqp,
    MOAT_DATABASE_URL: servicesUrls.database,
    MOAT_REDIS_URL: servicesUrls.redis,
    MOAT_NAMESPACE: id,
    MOAT_DB_SCHEMA: id,
    MOAT_STATE_DIR: stateDir,
    MOAT_SERVICES_DIR: servicesDir,
    MOAT_SUPERVISOR_OUTPUT: 'raw',
    ...extra,
  };
}

describe('supervisor preflight', () => {
  it('when Redis is unreachable, then it exits non-zero naming the URL (password hidden) and how to start Redis', async () => {
    const run = runSupervisor(isolatedEnv({ MOAT_REDIS_URL: 'redis://:hunter2@127.0.0.1:1', MOAT_SUPERVISOR_OUTPUT: 'pretty' }));
    const { code } = await run.exited;
    const out = run.output();
    expect(code).toBe(1);
    expect(out).toContain('cannot reach Redis at redis://:***@127.0.0.1:1 (MOAT_REDIS_URL)');
    expect(out).toContain('redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no');
    expect(out).toContain('docker compose up -d redis');
    expect(out).not.toContain('hunter2');
    // RabbitMQ and Postgres were reachable: only Redis is reported.
    expect(out).not.toContain('cannot reach RabbitMQ');
    expect(out).not.toContain('cannot reach Postgres');
  });

  it('when MOAT_ENV=production and no secrets are set, then it is a config error naming each variable', async () => {
    const run = runSupervisor(isolatedEnv({ MOAT_ENV: 'production' }));
    const { code } = await run.exited;
    expect(code).toBe(78);
    expect(run.output()).toMatch(/MOAT_MASTER_KEY: required when MOAT_ENV=production/);
    expect(run.output()).toMatch(/MOAT_BOOTSTRAP_TOKEN: required when MOAT_ENV=production/);
  });

  it('when MOAT_SENDERS is malformed, then it is a config error naming the variable', async () => {
    const run = runSupervisor(isolatedEnv({ MOAT_SENDERS: 'default=nowhere' }));
    const { code } = await run.exited;
    expect(code).toBe(78);
    expect(run.output()).toMatch(/MOAT_SENDERS: "nowhere" \(pool default\) is not an IP address/);
  });
});

describe('supervisor running a stack', () => {
  it('when started, then it migrates, runs every service with its own admin port, prefixes output, reports ready, and stops on SIGTERM', async () => {
    const base = await freePortRange(8);
    const env = isolatedEnv({ MOAT_ADMIN_PORT_BASE: String(base), MOAT_SENDERS: 'default=127.0.1.1,bulk=127.0.2.1', MOAT_ADMIN_PORT: '1' });
    const run = runSupervisor(env);
    try {
      await run.waitFor(/stop with Ctrl-C/);
    } catch (err) {
      run.kill('SIGKILL');
      throw err;
    }
    const out = run.output();
    // Migrations ran into the isolated schema.
    expect(out).toMatch(new RegExp(`applied migrations to schema ${env.MOAT_DB_SCHEMA}: .*initial`));
    // Every service is its own process with a distinct admin port, its name on each line.
    const started = out.split('\n').filter((l) => l.includes('"fake started"'));
    expect(started).toHaveLength(8);
    const ports = new Map<string, number>();
    for (const line of started) {
      const [name, json] = line.split(' | ');
      const fields = JSON.parse(json!) as { adminPort: number; pool: string | null; sourceIp: string | null; masterKeyBytes: number; tokenLength: number };
      ports.set(name!.trim(), fields.adminPort);
      expect(fields.masterKeyBytes).toBe(32);
      expect(fields.tokenLength).toBeGreaterThanOrEqual(16);
      if (name!.startsWith('sender:default')) expect([fields.pool, fields.sourceIp]).toEqual(['default', '127.0.1.1']);
      if (name!.startsWith('sender:bulk')) expect([fields.pool, fields.sourceIp]).toEqual(['bulk', '127.0.2.1']);
    }
    expect(Object.fromEntries(ports)).toEqual({
      ingress: base,
      filter: base + 1,
      archive: base + 2,
      router: base + 3,
      tracker: base + 4,
      gateway: base + 5,
      'sender:default': base + 6,
      'sender:bulk': base + 7,
    });
    // Prefixes are aligned: every line has its bar in the same column.
    const bars = new Set(out.split('\n').filter((l) => l.includes(' | ')).map((l) => l.indexOf(' | ')));
    expect(bars.size).toBe(1);
    // Dev secrets were generated once, 0600, and the token file is named with a curl example.
    const tokenFile = join(env.MOAT_STATE_DIR!, 'bootstrap-token');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(out).toContain(`Authorization: Bearer $(cat ${tokenFile})`);
    expect(out).not.toContain(readFileSync(tokenFile, 'utf8').trim());

    run.kill('SIGTERM');
    const { code } = await run.exited;
    expect(code).toBe(0);
    const after = run.output();
    expect(after.match(/"drained"/g)).toHaveLength(8);
    expect(after).toMatch(/"msg":"stopped"/);
  });

  it('when a service keeps crashing, then it is restarted with back-off and the supervisor gives up loudly and exits 1', async () => {
    const base = await freePortRange(7);
    const run = runSupervisor(
      isolatedEnv({
        MOAT_ADMIN_PORT_BASE: String(base),
        FAKE_CRASH: 'router',
        MOAT_RESTART_MIN_DELAY_MS: '50',
        MOAT_RESTART_MAX_DELAY_MS: '200',
        MOAT_RESTART_MAX_FAST_CRASHES: '3',
      }),
    );
    const { code } = await run.exited;
    const out = run.output();
    expect(code).toBe(1);
    expect(out.match(/router exited \(exit code 1\) after \S+: restarting in/g)).toHaveLength(2);
    expect(out).toContain('router crashed 3 times in a row, each within 10s of starting');
    expect(out).toContain('router: simulated crash');
    // The healthy services were stopped cleanly, not abandoned.
    expect(out).toMatch(/gateway +\| .*"drained"/);
  });

  it('when a service ignores SIGTERM, then it is killed after the bound and the exit code says so', async () => {
    const base = await freePortRange(7);
    const run = runSupervisor(isolatedEnv({ MOAT_ADMIN_PORT_BASE: String(base), FAKE_IGNORE_TERM: 'archive', MOAT_SHUTDOWN_TIMEOUT_MS: '500', MOAT_SERVICES: 'archive,tracker' }));
    await run.waitFor(/stop with Ctrl-C/);
    run.kill('SIGTERM');
    const { code } = await run.exited;
    expect(code).toBe(1);
    expect(run.output()).toMatch(/archive \(pid \d+\) did not stop within 5.5s: killed/);
    expect(run.output()).toMatch(/tracker +\| .*"drained"/);
  });
});
