import { describe, expect, it } from 'vitest';
import { dependenciesOf, formatPreflightReport, preflight, redactUrl, type Probe } from './preflight.js';

const urls = { MOAT_AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672', MOAT_DATABASE_URL: 'postgres://moat:s3cret@db.internal:5432/moat', MOAT_REDIS_URL: 'redis://127.0.0.1:6379' };

describe('redactUrl', () => {
  it('when a URL has a password, then only the password is hidden', () => {
    expect(redactUrl('postgres://moat:s3cret@db:5432/moat')).toBe('postgres://moat:***@db:5432/moat');
    expect(redactUrl('redis://:hunter2@127.0.0.1:1')).toBe('redis://:***@127.0.0.1:1');
    expect(redactUrl('amqps://user:p%40ss@mq/vhost?heartbeat=5')).toBe('amqps://user:***@mq/vhost?heartbeat=5');
  });

  it('when a URL has no password, then it is unchanged', () => {
    expect(redactUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
    expect(redactUrl('postgres://postgres@127.0.0.1:5432/moat')).toBe('postgres://postgres@127.0.0.1:5432/moat');
  });
});

describe('preflight', () => {
  it('when every probe fails, then every dependency is reported, not just the first', async () => {
    const failing: Probe = async () => {
      throw new Error('connect ECONNREFUSED');
    };
    const failures = await preflight(dependenciesOf(urls), 1_000, { RabbitMQ: failing, Postgres: failing, Redis: failing });
    expect(failures.map((f) => f.dependency.name)).toEqual(['RabbitMQ', 'Postgres', 'Redis']);
  });

  it('when a probe hangs, then it fails after the timeout', async () => {
    const ok: Probe = async () => {};
    const hangs: Probe = () => new Promise(() => {});
    const failures = await preflight(dependenciesOf(urls), 10, { RabbitMQ: ok, Postgres: ok, Redis: hangs });
    expect(failures).toEqual([{ dependency: expect.objectContaining({ name: 'Redis' }), error: 'no answer within 10 ms' }]);
  });
});

describe('formatPreflightReport', () => {
  it('when Postgres fails, then the report names the redacted URL, the variable and how to start it', () => {
    const [, postgres] = dependenciesOf(urls);
    const lines = formatPreflightReport([{ dependency: postgres!, error: 'password authentication failed' }]);
    expect(lines[0]).toBe('cannot reach Postgres at postgres://moat:***@db.internal:5432/moat (MOAT_DATABASE_URL): password authentication failed');
    expect(lines.join('\n')).toContain('pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start');
    expect(lines.join('\n')).toContain('docker compose up -d postgres');
    expect(lines.join('\n')).not.toContain('s3cret');
  });

  it('when nothing failed, then there is nothing to say', () => {
    expect(formatPreflightReport([])).toEqual([]);
  });
});
