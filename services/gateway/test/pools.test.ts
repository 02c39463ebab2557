import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { Broker, loadConfig } from '@moat/runtime';
import { createTestEnv, silentLog, testPool, type TestEnv } from '@moat/testkit';
import { configSchema, start, type GatewayService } from '../src/index.js';
import { apiCaller } from './support/api.js';

let t: TestEnv;
let gateway: GatewayService;
let pool: pg.Pool;
let base: string;
let operator: string;


const call = apiCaller(() => base, () => operator);

beforeAll(async () => {
  t = await createTestEnv();
  gateway = await start(loadConfig(configSchema, { ...t.env, MOAT_HTTP_PORT: '0', MOAT_HTTP_HOST: '127.0.0.1' }), silentLog);
  base = `http://127.0.0.1:${gateway.httpPort}`;
  operator = t.env.MOAT_BOOTSTRAP_TOKEN!;
  pool = testPool(t);
  const v4 = await call('POST', '/api/v1/pools', { body: { name: 'eu-1', cidrs: ['64.182.140.0/24', '198.51.100.7/32'], ehloName: 'out1.moat.example' } });
  expect(v4.status).toBe(201);
  const v6 = await call('POST', '/api/v1/pools', { body: { name: 'eu-v6', cidrs: ['2001:0DB8:0001::/48'], state: 'warming' } });
  expect(v6.status).toBe(201);
});

afterAll(async () => {
  await gateway?.stop();
  await pool?.end();
  if (t) {
    const broker = new Broker({ url: t.env.MOAT_AMQP_URL!, namespace: t.id, producer: 'test-cleanup', log: silentLog });
    await broker.connect();
    await broker.destroyNamespace(['filter', 'archive', 'router', 'tracker']);
    await broker.close();
    await t.cleanup();
  }
});

describe('sending pools', () => {
  it('when pools are created, then the list shows each range as CIDR, first–last and address / netmask', async () => {
    const res = await call('GET', '/api/v1/pools');
    expect(res.status).toBe(200);
    expect(res.body.items).toEqual([
      {
        name: 'eu-1',
        state: 'active',
        ehloName: 'out1.moat.example',
        ranges: [
          { cidr: '64.182.140.0/24', firstLast: '64.182.140.0-64.182.140.255', netmask: '64.182.140.0 / 255.255.255.0' },
          { cidr: '198.51.100.7/32', firstLast: '198.51.100.7-198.51.100.7', netmask: '198.51.100.7 / 255.255.255.255' },
        ],
      },
      {
        name: 'eu-v6',
        state: 'warming',
        ehloName: null,
        ranges: [{ cidr: '2001:db8:1::/48', firstLast: '2001:db8:1::-2001:db8:1:ffff:ffff:ffff:ffff:ffff', netmask: '2001:db8:1:: / ffff:ffff:ffff::' }],
      },
    ]);
  });

  it('when a pool is created, then its Location reads it back and the write is audited', async () => {
    const res = await call('POST', '/api/v1/pools', { body: { name: 'audit-me', cidrs: ['203.0.113.0/28'] } });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe('/api/v1/pools/audit-me');
    expect((await call('GET', res.headers.get('location')!)).body).toEqual(res.body);
    const audit = await pool.query("SELECT actor, detail FROM audit_log WHERE action = 'pool.create' AND target = 'audit-me'");
    expect(audit.rows[0]).toMatchObject({ actor: expect.stringMatching(/^bootstrap\//), detail: { cidrs: ['203.0.113.0/28'], state: 'active' } });
    expect((await call('POST', '/api/v1/pools', { body: { name: 'audit-me', cidrs: ['203.0.113.16/28'] } })).status).toBe(409);
  });

  it('when format=txt is asked, then every CIDR comes one per line as text/plain and a disabled pool is left out', async () => {
    const off = await call('POST', '/api/v1/pools', { body: { name: 'retired', cidrs: ['192.0.2.0/24'], state: 'disabled' } });
    expect(off.status).toBe(201);
    const res = await call('GET', '/api/v1/pools?format=txt');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    const lines = res.text.split('\n');
    expect(lines.at(-1)).toBe('');
    expect(lines).toEqual(expect.arrayContaining(['64.182.140.0/24', '198.51.100.7/32', '2001:db8:1::/48']));
    expect(lines).not.toContain('192.0.2.0/24');
    // IPv4 before IPv6, so the file diffs cleanly between fetches.
    expect(lines.indexOf('2001:db8:1::/48')).toBeGreaterThan(lines.indexOf('198.51.100.7/32'));
  });

  it('when a pool is patched, then its state, ranges and EHLO name change, the change is audited, and draining stays published', async () => {
    await call('POST', '/api/v1/pools', { body: { name: 'patch-me', cidrs: ['203.0.113.64/27'], ehloName: 'old.moat.example' } });
    const res = await call('PATCH', '/api/v1/pools/patch-me', { body: { state: 'draining', cidrs: ['203.0.113.96/27'], ehloName: null } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: 'patch-me', state: 'draining', ehloName: null, ranges: [{ cidr: '203.0.113.96/27' }] });
    const audit = await pool.query("SELECT detail FROM audit_log WHERE action = 'pool.update' AND target = 'patch-me'");
    expect(audit.rows[0]?.detail).toMatchObject({ before: { state: 'active', cidrs: ['203.0.113.64/27'] }, after: { state: 'draining', cidrs: ['203.0.113.96/27'] } });
    const txt = await call('GET', '/api/v1/pools?format=txt');
    expect(txt.text.split('\n')).toContain('203.0.113.96/27');
    expect(txt.text.split('\n')).not.toContain('203.0.113.64/27');
    expect((await call('PATCH', '/api/v1/pools/no-such-pool', { body: { state: 'active' } })).status).toBe(404);
  });

  it('when a tenant key asks, then it can read the pools but not create or change them (403)', async () => {
    const tenant = await call('POST', '/api/v1/tenants', { body: { name: 'Firewall Ltd' } });
    const key = await call('POST', `/api/v1/tenants/${tenant.body.id}/api-keys`, { body: { name: 'fw', scopes: ['domains:read'] } });
    expect(key.status).toBe(201);
    const read = await call('GET', '/api/v1/pools', { token: key.body.key });
    expect(read.status).toBe(200);
    expect(read.body.items.map((p: { name: string }) => p.name)).toContain('eu-1');
    expect((await call('GET', '/api/v1/pools?format=txt', { token: key.body.key })).text).toContain('64.182.140.0/24\n');
    const create = await call('POST', '/api/v1/pools', { token: key.body.key, body: { name: 'mine', cidrs: ['10.0.0.0/8'] } });
    expect(create.status).toBe(403);
    expect(create.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await call('PATCH', '/api/v1/pools/eu-1', { token: key.body.key, body: { state: 'disabled' } })).status).toBe(403);
    expect((await call('GET', '/api/v1/pools/mine')).status).toBe(404);
  });

  it('when a range is not a valid CIDR, then it answers 400 naming cidrs and the value', async () => {
    const res = await call('POST', '/api/v1/pools', { body: { name: 'typo', cidrs: ['64.182.140.1/24'] } });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body.errors).toEqual([{ field: 'cidrs[0]', message: '64.182.140.1/24 has host bits set; did you mean 64.182.140.0/24?' }]);
    expect(res.body.detail).toContain('cidrs[0]: 64.182.140.1/24 has host bits set');
    const overlap = await call('PATCH', '/api/v1/pools/eu-1', { body: { cidrs: ['64.182.140.0/24', '64.182.140.128/25'] } });
    expect(overlap.status).toBe(400);
    expect(overlap.body.errors).toEqual([{ field: 'cidrs', message: '64.182.140.128/25 lies inside 64.182.140.0/24' }]);
    const bad = await call('POST', '/api/v1/pools', { body: { name: 'Bad Name', cidrs: ['not-an-ip/8'], state: 'paused' } });
    expect(bad.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(['cidrs[0]', 'name', 'state']);
    expect((await call('GET', '/api/v1/pools?format=csv')).body.errors[0].field).toBe('format');
    expect((await call('GET', '/api/v1/pools/typo')).status).toBe(404);
  });
});
