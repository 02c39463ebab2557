import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { queues, type AnyEvent } from '@moat/contracts';
import { Broker, loadConfig } from '@moat/runtime';
import { createTestEnv, eventually, silentLog, testPool, type TestEnv } from '@moat/testkit';
import { configSchema, start, type GatewayService } from '../src/index.js';
import { apiCaller } from './support/api.js';

// The gateway's side of subnet checks against the real Postgres, Redis and RabbitMQ: creating a
// check, what it publishes, rate limits, tenant isolation, and the deadline that always ends a
// check. (Senders answering the probes: tests/subnet-check.test.ts.)

let t: TestEnv;
let gateway: GatewayService;
let db: pg.Pool;
let base: string;
let operator: string;
/** Plays a sender of pool `quiet`: takes the requests and never answers. */
let broker: Broker;
const requests: AnyEvent[] = [];
const deadlineMs = 1_500;


const call = apiCaller(() => base, () => operator);

let n = 0;
/** A tenant with one domain routed to two servers; returns ids and a tenant key. */
async function tenantWithDomain(scopes: string[] = ['*']): Promise<{ tenantId: string; domainId: string; domain: string; key: string }> {
  n++;
  const tenant = await call('POST', '/api/v1/tenants', { body: { name: `Checker ${n}` } });
  const domain = `check${n}-${t.id}.example`;
  const d = await call('POST', `/api/v1/tenants/${tenant.body.id}/domains`, {
    body: { name: domain, routes: [{ host: '127.0.0.1', port: 2525, priority: 10 }, { host: 'mx2.customer.example', port: 25, priority: 20 }] },
  });
  expect(d.status).toBe(201);
  const key = await call('POST', `/api/v1/tenants/${tenant.body.id}/api-keys`, { body: { name: 'k', scopes } });
  return { tenantId: tenant.body.id, domainId: d.body.id, domain, key: key.body.key };
}

beforeAll(async () => {
  t = await createTestEnv({ MOAT_SUBNET_CHECK_DEADLINE_MS: String(deadlineMs), MOAT_SUBNET_CHECK_RATE_LIMIT: '3', MOAT_SUBNET_CHECK_RATE_WINDOW_MS: '60000' });
  gateway = await start(loadConfig(configSchema, { ...t.env, MOAT_HTTP_PORT: '0', MOAT_HTTP_HOST: '127.0.0.1' }), silentLog);
  base = `http://127.0.0.1:${gateway.httpPort}`;
  operator = t.env.MOAT_BOOTSTRAP_TOKEN!;
  db = testPool(t);
  broker = new Broker({ url: t.env.MOAT_AMQP_URL!, namespace: t.id, producer: 'test', log: silentLog });
  await broker.connect();
});

afterAll(async () => {
  await gateway?.stop();
  await db?.end();
  if (broker) {
    await broker.drain(1_000);
    await broker.destroyNamespace([queues.subnetCheck('quiet').name, queues.subnetCheck('idle').name, queues.subnetCheckOutsider.name]);
    await broker.close();
  }
  await t?.cleanup();
});

describe('starting a subnet check', () => {
  it('when no pool is active, warming or draining, then it answers 409 and spends no quota', async () => {
    const { domainId } = await tenantWithDomain();
    const res = await call('POST', `/api/v1/domains/${domainId}/subnet-checks`);
    expect(res.status).toBe(409);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body.detail).toContain('no sending pool');
    // Create the pools the rest of the file uses: `quiet` has a consumer that never answers,
    // `idle` has none; `retired` is disabled and never probed.
    expect((await call('POST', '/api/v1/pools', { body: { name: 'quiet', cidrs: ['127.0.1.0/24'] } })).status).toBe(201);
    expect((await call('POST', '/api/v1/pools', { body: { name: 'idle', cidrs: ['127.0.2.0/24'], state: 'warming' } })).status).toBe(201);
    expect((await call('POST', '/api/v1/pools', { body: { name: 'retired', cidrs: ['127.0.3.0/24'], state: 'disabled' } })).status).toBe(201);
    await broker.consume(queues.subnetCheck('quiet'), async ({ event }) => {
      requests.push(event);
    });
  });

  it('when a check starts, then each published pool gets one request with the stored routes, and a pool without senders is an error at once', async () => {
    const { domainId, domain, tenantId } = await tenantWithDomain();
    const res = await call('POST', `/api/v1/domains/${domainId}/subnet-checks`);
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/api/v1/domains/${domainId}/subnet-checks/${res.body.id}`);
    expect(res.body).toMatchObject({ domainId, domain, status: 'running', result: 'pending', routes: [{ host: '127.0.0.1', port: 2525, priority: 10 }, { host: 'mx2.customer.example', port: 25, priority: 20 }] });
    expect(res.body.pools.map((p: { pool: string }) => p.pool)).toEqual(['idle', 'quiet']);
    const idle = res.body.pools[0];
    expect(idle).toMatchObject({ pool: 'idle', state: 'warming', ranges: ['127.0.2.0/24'], result: 'error' });
    expect(idle.routes.map((r: { result: string }) => r.result)).toEqual(['error', 'error']);
    expect(idle.routes[0].error).toContain('no sender of pool idle has ever run');
    expect(res.body.pools[1]).toMatchObject({ pool: 'quiet', result: 'pending', routes: [{ host: '127.0.0.1', result: 'pending' }, { host: 'mx2.customer.example', result: 'pending' }] });
    // No sender runs outsider probes in this environment: said at once, lock-down unknown.
    expect(res.body.lockdown.result).toBe('unknown');
    expect(res.body.lockdown.routes[0].error).toContain('MOAT_SUBNET_CHECK_OUTSIDER_ADDRESS');

    const request = await eventually(() => requests.find((e) => e.type === 'subnetcheck.requested' && e.payload.checkId === res.body.id));
    expect(request.v).toBe(1);
    expect(request.payload).toEqual({
      checkId: res.body.id,
      tenantId,
      domain,
      routes: [{ host: '127.0.0.1', port: 2525, priority: 10 }, { host: 'mx2.customer.example', port: 25, priority: 20 }],
      source: 'pool',
      pool: 'quiet',
      cidrs: ['127.0.1.0/24'],
      deadline: res.body.deadline,
    });
    expect(Date.parse(res.body.deadline) - Date.parse(res.body.createdAt)).toBeGreaterThanOrEqual(deadlineMs - 50);

    const audit = await db.query("SELECT actor, detail FROM audit_log WHERE action = 'subnet_check.start' AND target = $1", [res.body.id]);
    expect(audit.rows[0]).toMatchObject({ actor: expect.stringMatching(/^bootstrap\//), detail: { domainId, domain } });
  });

  it('when a probe gets no answer before the deadline, then the check is done with that probe `timeout`', async () => {
    const { domainId } = await tenantWithDomain();
    const started = await call('POST', `/api/v1/domains/${domainId}/subnet-checks`);
    expect(started.status).toBe(201);
    const done = await eventually(async () => {
      const res = await call('GET', `/api/v1/domains/${domainId}/subnet-checks/${started.body.id}`);
      return res.body.status === 'done' ? res.body : null;
    }, 10_000);
    const quiet = done.pools.find((p: { pool: string }) => p.pool === 'quiet');
    expect(quiet.result).toBe('timeout');
    expect(quiet.routes.map((r: { result: string; error: string }) => [r.result, r.error])).toEqual([
      ['timeout', expect.stringContaining('no result before the deadline')],
      ['timeout', expect.stringContaining('no result before the deadline')],
    ]);
    expect(done.result).toBe('error');
    expect(Date.parse(done.finishedAt)).toBeGreaterThanOrEqual(Date.parse(done.deadline));
    const list = await call('GET', `/api/v1/domains/${domainId}/subnet-checks`);
    expect(list.status).toBe(200);
    expect(list.body.items).toEqual([{ id: started.body.id, status: 'done', result: 'error', lockdown: 'unknown', createdAt: started.body.createdAt, finishedAt: done.finishedAt }]);
  });

  it('when nobody reads an overdue check, then the sweeper finishes it anyway', async () => {
    const { domainId } = await tenantWithDomain();
    const started = await call('POST', `/api/v1/domains/${domainId}/subnet-checks`);
    const row = await eventually(async () => {
      const r = await db.query("SELECT status FROM subnet_checks WHERE id = $1 AND status = 'done'", [started.body.id]);
      return r.rows[0];
    }, 10_000);
    expect(row.status).toBe('done');
    const probes = await db.query("SELECT status FROM subnet_check_probes WHERE check_id = $1 AND pool = 'quiet'", [started.body.id]);
    expect(probes.rows.map((r) => r.status)).toEqual(['timeout', 'timeout']);
  });

  it('when a body names a host, then it answers 400: probes go only to the configured routes', async () => {
    const { domainId } = await tenantWithDomain();
    const res = await call('POST', `/api/v1/domains/${domainId}/subnet-checks`, { body: { host: '10.0.0.1', port: 6379 } });
    expect(res.status).toBe(400);
    expect(res.body.detail).toContain('takes no body');
    expect((await call('GET', `/api/v1/domains/${domainId}/subnet-checks`)).body.items).toEqual([]);
  });

  it('when a tenant starts more checks than its limit, then it gets 429 with Retry-After, and another tenant is not affected', async () => {
    const first = await tenantWithDomain();
    for (let i = 0; i < 3; i++) expect((await call('POST', `/api/v1/domains/${first.domainId}/subnet-checks`, { token: first.key })).status).toBe(201);
    const refused = await call('POST', `/api/v1/domains/${first.domainId}/subnet-checks`, { token: first.key });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(refused.body).toMatchObject({ type: 'urn:moat:problem:too-many-requests', status: 429 });
    expect(refused.body.detail).toContain('started 3 subnet checks');
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // The limit is per tenant, whoever asks (the operator too).
    expect((await call('POST', `/api/v1/domains/${first.domainId}/subnet-checks`)).status).toBe(429);
    const second = await tenantWithDomain();
    expect((await call('POST', `/api/v1/domains/${second.domainId}/subnet-checks`, { token: second.key })).status).toBe(201);
  });
});

describe('tenant isolation', () => {
  it('when another tenant’s key asks, then the domain and its checks answer 404; a read-only key may read but not start', async () => {
    const owner = await tenantWithDomain();
    const stranger = await tenantWithDomain();
    const check = await call('POST', `/api/v1/domains/${owner.domainId}/subnet-checks`, { token: owner.key });
    expect(check.status).toBe(201);
    expect((await call('GET', `/api/v1/domains/${owner.domainId}/subnet-checks/${check.body.id}`, { token: stranger.key })).status).toBe(404);
    expect((await call('GET', `/api/v1/domains/${owner.domainId}/subnet-checks`, { token: stranger.key })).status).toBe(404);
    expect((await call('POST', `/api/v1/domains/${owner.domainId}/subnet-checks`, { token: stranger.key })).status).toBe(404);
    // A check read through another (visible) domain's path is not found either.
    expect((await call('GET', `/api/v1/domains/${stranger.domainId}/subnet-checks/${check.body.id}`, { token: stranger.key })).status).toBe(404);

    const readOnly = (await call('POST', `/api/v1/tenants/${owner.tenantId}/api-keys`, { body: { name: 'ro', scopes: ['domains:read'] } })).body.key;
    expect((await call('GET', `/api/v1/domains/${owner.domainId}/subnet-checks/${check.body.id}`, { token: readOnly })).status).toBe(200);
    const denied = await call('POST', `/api/v1/domains/${owner.domainId}/subnet-checks`, { token: readOnly });
    expect(denied.status).toBe(403);
    expect(denied.body.detail).toContain('domains:write');
    expect((await call('GET', `/api/v1/domains/${owner.domainId}/subnet-checks/not-a-uuid`)).status).toBe(404);
  });
});
