import { describe, expect, it } from 'vitest';
import { servicesUrls } from '@moat/testkit';
import { dependenciesOf, preflight } from '../src/preflight.js';

const real = { MOAT_AMQP_URL: servicesUrls.amqp, MOAT_DATABASE_URL: servicesUrls.database, MOAT_REDIS_URL: servicesUrls.redis };

describe('preflight against the real services', () => {
  it('when RabbitMQ, Postgres and Redis run, then nothing fails', async () => {
    expect(await preflight(dependenciesOf(real), 5_000)).toEqual([]);
  });

  it('when the database does not exist yet, then the server still counts as reachable (migrations create it)', async () => {
    const url = new URL(servicesUrls.database);
    url.pathname = '/moat_preflight_does_not_exist';
    expect(await preflight(dependenciesOf({ ...real, MOAT_DATABASE_URL: url.toString() }), 5_000)).toEqual([]);
  });

  it('when each points at a closed port or wrong credentials, then each is reported with its error', async () => {
    const failures = await preflight(
      dependenciesOf({
        MOAT_AMQP_URL: 'amqp://guest:wrong-password@127.0.0.1:5672',
        MOAT_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/moat',
        MOAT_REDIS_URL: 'redis://127.0.0.1:1',
      }),
      3_000,
    );
    expect(failures.map((f) => f.dependency.name)).toEqual(['RabbitMQ', 'Postgres', 'Redis']);
    expect(failures[0]?.error).toMatch(/ACCESS_REFUSED|403|refused/i);
    expect(failures[1]?.error).toMatch(/ECONNREFUSED/);
    expect(failures[2]?.error).toMatch(/ECONNREFUSED/);
  });
});
