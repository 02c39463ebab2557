import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@moat/runtime';
import { FilterPolicyRepository } from '@moat/store';
import { createTestEnv, silentLog, testPool, type TestEnv } from '@moat/testkit';
import { configSchema, start, type GatewayService } from '../src/index.js';
import { type Answer, apiCaller } from './support/api.js';

// The tenant filter policy API against the real Postgres: the policy (defaults, partial changes,
// score order), the allow/block lists (normalised values, mailbox checks, filters, delete),
// problem documents, scopes, tenant isolation and the audit log. (The filter side:
// tests/filter-policy.test.ts.)

let t: TestEnv;
let gateway: GatewayService;
let db: pg.Pool;
let base: string;
let operator: string;


const call = apiCaller(() => base, () => operator);

function expectProblem(res: Answer, status: number, field?: string): void {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  if (field) expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
}

let n = 0;
/** A tenant with one protected domain, and a tenant key holding `scopes`. */
async function tenant(scopes: string[] = ['*']): Promise<{ tenantId: string; key: string; domain: string }> {
  n++;
  const created = await call('POST', '/api/v1/tenants', { body: { name: `Policy ${n}` } });
  expect(created.status).toBe(201);
  const domain = `fp${n}-${t.id}.example`;
  expect((await call('POST', `/api/v1/tenants/${created.body.id}/domains`, { body: { name: domain, routes: [{ host: '127.0.0.1', port: 25, priority: 10 }] } })).status).toBe(201);
  const key = await call('POST', `/api/v1/tenants/${created.body.id}/api-keys`, { body: { name: 'k', scopes } });
  expect(key.status).toBe(201);
  return { tenantId: created.body.id, key: key.body.key, domain };
}

const audited = async (action: string, target: string) => (await db.query('SELECT actor, detail FROM audit_log WHERE action = $1 AND target = $2', [action, target])).rows[0];

beforeAll(async () => {
  t = await createTestEnv();
  gateway = await start(loadConfig(configSchema, { ...t.env, MOAT_HTTP_PORT: '0', MOAT_HTTP_HOST: '127.0.0.1' }), silentLog);
  base = `http://127.0.0.1:${gateway.httpPort}`;
  operator = t.env.MOAT_BOOTSTRAP_TOKEN!;
  db = testPool(t);
});

afterAll(async () => {
  await gateway?.stop();
  await db?.end();
  await t?.cleanup();
});

describe('filter policy', () => {
  it('when a tenant never set a policy, then every field is null (the filter’s defaults) and DMARC is only tagged', async () => {
    const { tenantId, key } = await tenant();
    const res = await call('GET', `/api/v1/tenants/${tenantId}/filter-policy`, { token: key });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ spamTagScore: null, subjectTag: null, quarantineScore: null, rejectScore: null, dmarc: 'tag', scannerUnavailable: null, quarantineDigests: true });
  });

  it('when fields are patched, then the others keep their value, null restores a default, the filter reads it, and the change is audited', async () => {
    const { tenantId, key } = await tenant();
    const first = await call('PATCH', `/api/v1/tenants/${tenantId}/filter-policy`, { token: key, body: { quarantineScore: 7, rejectScore: 12, subjectTag: '[SPAM]', dmarc: 'honour', scannerUnavailable: 'deliver', quarantineDigests: false } });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ spamTagScore: null, subjectTag: '[SPAM]', quarantineScore: 7, rejectScore: 12, dmarc: 'honour', scannerUnavailable: 'deliver', quarantineDigests: false });
    const second = await call('PATCH', `/api/v1/tenants/${tenantId}/filter-policy`, { token: key, body: { spamTagScore: 3, subjectTag: null } });
    expect(second.body).toEqual({ spamTagScore: 3, subjectTag: null, quarantineScore: 7, rejectScore: 12, dmarc: 'honour', scannerUnavailable: 'deliver', quarantineDigests: false });
    expect((await call('GET', `/api/v1/tenants/${tenantId}/filter-policy`, { token: key })).body).toEqual(second.body);
    const settings = await new FilterPolicyRepository(db).settingsFor(tenantId);
    expect(settings.policy).toEqual(second.body);
    expect(settings.domains).toHaveLength(1);
    expect(await audited('tenant.filter-policy', tenantId)).toMatchObject({ actor: expect.stringMatching(/^k\//) });
  });

  it('when the scores are out of order, then 400 names the field and nothing changes', async () => {
    const { tenantId, key } = await tenant();
    const below = await call('PATCH', `/api/v1/tenants/${tenantId}/filter-policy`, { token: key, body: { quarantineScore: 8, rejectScore: 6 } });
    expectProblem(below, 400, 'rejectScore');
    expect(below.body.detail).toContain('rejectScore must not be below quarantineScore (8)');
    expectProblem(await call('PATCH', `/api/v1/tenants/${tenantId}/filter-policy`, { token: key, body: { rejectScore: 6 } }), 400, 'rejectScore');
    expectProblem(await call('PATCH', `/api/v1/tenants/${tenantId}/filter-policy`, { token: key, body: { spamTagScore: 9, quarantineScore: 8 } }), 400, 'spamTagScore');
    expectProblem(await call('PATCH', `/api/v1/tenants/${tenantId}/filter-policy`, { token: key, body: { quarantineScore: -1 } }), 400, 'quarantineScore');
    expectProblem(await call('PATCH', `/api/v1/tenants/${tenantId}/filter-policy`, { token: key, body: { dmarc: 'reject' } }), 400, 'dmarc');
    expectProblem(await call('PATCH', `/api/v1/tenants/${tenantId}/filter-policy`, { token: key, body: { subjectTag: 'a\r\nBcc: x@y' } }), 400, 'subjectTag');
    expectProblem(await call('PATCH', `/api/v1/tenants/${tenantId}/filter-policy`, { token: key, body: { spamScore: 1 } }), 400, 'spamScore');
    expectProblem(await call('PATCH', `/api/v1/tenants/${tenantId}/filter-policy`, { token: key, body: { quarantineDigests: 'no' } }), 400, 'quarantineDigests');
    expectProblem(await call('PATCH', `/api/v1/tenants/${tenantId}/filter-policy`, { token: key, body: { quarantineDigests: null } }), 400, 'quarantineDigests');
    expect((await call('GET', `/api/v1/tenants/${tenantId}/filter-policy`, { token: key })).body.quarantineScore).toBeNull();
  });

  it('when a key lacks tenants:write, or the tenant is another’s, then 403 or 404', async () => {
    const reader = await tenant(['tenants:read']);
    expect((await call('GET', `/api/v1/tenants/${reader.tenantId}/filter-policy`, { token: reader.key })).status).toBe(200);
    expectProblem(await call('PATCH', `/api/v1/tenants/${reader.tenantId}/filter-policy`, { token: reader.key, body: { quarantineScore: 3 } }), 403);
    const other = await tenant();
    expectProblem(await call('GET', `/api/v1/tenants/${other.tenantId}/filter-policy`, { token: reader.key }), 404);
  });
});

describe('filter lists', () => {
  it('when entries are added, then values are normalised, 201 answers a Location, lists filter by mailbox and list, and the addition is audited', async () => {
    const { tenantId, key, domain } = await tenant();
    const path = `/api/v1/tenants/${tenantId}/filter-lists`;
    const ip = await call('POST', path, { token: key, body: { list: 'allow', kind: 'ip', value: '2001:DB8:0001::/48', comment: 'partner relay' } });
    expect(ip.status).toBe(201);
    expect(ip.body).toMatchObject({ tenantId, mailbox: null, list: 'allow', kind: 'ip', value: '2001:db8:1::/48', comment: 'partner relay' });
    expect(ip.headers.get('location')).toBe(`${path}/${ip.body.id}`);
    const single = await call('POST', path, { token: key, body: { list: 'block', kind: 'ip', value: '192.0.2.7' } });
    expect(single.body.value).toBe('192.0.2.7/32');
    const mailbox = await call('POST', path, { token: key, body: { list: 'block', kind: 'domain', value: 'Spam.Example.', mailbox: `Ceo@${domain.toUpperCase()}` } });
    expect(mailbox.status).toBe(201);
    expect(mailbox.body).toMatchObject({ mailbox: `ceo@${domain}`, value: 'spam.example' });

    const ids = (res: Answer) => res.body.items.map((e: { id: string }) => e.id);
    expect(ids(await call('GET', path, { token: key }))).toEqual([ip.body.id, single.body.id, mailbox.body.id]);
    expect(ids(await call('GET', `${path}?mailbox=CEO@${domain}`, { token: key }))).toEqual([mailbox.body.id]);
    expect(ids(await call('GET', `${path}?tenantWide=true`, { token: key }))).toEqual([ip.body.id, single.body.id]);
    expect(ids(await call('GET', `${path}?tenantWide=false`, { token: key }))).toEqual([mailbox.body.id]);
    expect(ids(await call('GET', `${path}?list=block`, { token: key }))).toEqual([single.body.id, mailbox.body.id]);
    expectProblem(await call('GET', `${path}?mailbox=ceo@${domain}&tenantWide=true`, { token: key }), 400, 'tenantWide');
    expect((await call('GET', `${path}/${ip.body.id}`, { token: key })).body).toEqual(ip.body);
    expect(await audited('filter-list.add', mailbox.body.id)).toMatchObject({ detail: { tenantId, mailbox: `ceo@${domain}`, list: 'block', kind: 'domain', value: 'spam.example' } });
  });

  it('when a value or mailbox is invalid, then 400 says what is wrong with the field; the same entry twice is 409', async () => {
    const { tenantId, key, domain } = await tenant();
    const path = `/api/v1/tenants/${tenantId}/filter-lists`;
    const cidr = await call('POST', path, { token: key, body: { list: 'block', kind: 'ip', value: '10.1.2.3/8' } });
    expectProblem(cidr, 400, 'value');
    expect(cidr.body.detail).toContain('did you mean 10.0.0.0/8');
    expectProblem(await call('POST', path, { token: key, body: { list: 'block', kind: 'ip', value: '2001:db8::/129' } }), 400, 'value');
    expectProblem(await call('POST', path, { token: key, body: { list: 'block', kind: 'domain', value: '*.spam.example' } }), 400, 'value');
    expectProblem(await call('POST', path, { token: key, body: { list: 'block', kind: 'address', value: 'no-at-sign' } }), 400, 'value');
    expectProblem(await call('POST', path, { token: key, body: { list: 'deny', kind: 'address', value: 'a@b.example' } }), 400, 'list');
    const foreign = await call('POST', path, { token: key, body: { list: 'allow', kind: 'domain', value: 'ok.example', mailbox: 'someone@elsewhere.example' } });
    expectProblem(foreign, 400, 'mailbox');
    expect(foreign.body.detail).toBe("mailbox: elsewhere.example is not one of this tenant's domains");
    const other = await tenant();
    expectProblem(await call('POST', path, { token: key, body: { list: 'allow', kind: 'domain', value: 'ok.example', mailbox: `x@${other.domain}` } }), 400, 'mailbox');
    expect((await call('POST', path, { token: key, body: { list: 'allow', kind: 'address', value: 'A@ok.example', mailbox: `u@${domain}` } })).status).toBe(201);
    const twice = await call('POST', path, { token: key, body: { list: 'allow', kind: 'address', value: 'a@OK.example', mailbox: `U@${domain}` } });
    expectProblem(twice, 409);
    expect(twice.body.detail).toContain('already has the address entry a@ok.example');
    // The same value tenant-wide is another entry.
    expect((await call('POST', path, { token: key, body: { list: 'allow', kind: 'address', value: 'a@ok.example' } })).status).toBe(201);
  });

  it('when an entry is deleted, then it is gone, the deletion is audited, and another tenant’s key gets 404 for it', async () => {
    const owner = await tenant();
    const other = await tenant();
    const created = await call('POST', `/api/v1/tenants/${owner.tenantId}/filter-lists`, { token: owner.key, body: { list: 'block', kind: 'domain', value: 'gone.example' } });
    // Another tenant's key, on its own tenant's path or on the owner's: the entry does not exist for it.
    expectProblem(await call('DELETE', `/api/v1/tenants/${other.tenantId}/filter-lists/${created.body.id}`, { token: other.key }), 404);
    expectProblem(await call('DELETE', `/api/v1/tenants/${owner.tenantId}/filter-lists/${created.body.id}`, { token: other.key }), 404);
    const removed = await call('DELETE', `/api/v1/tenants/${owner.tenantId}/filter-lists/${created.body.id}`, { token: owner.key });
    expect(removed.status).toBe(200);
    expect(removed.body).toEqual(created.body);
    expectProblem(await call('DELETE', `/api/v1/tenants/${owner.tenantId}/filter-lists/${created.body.id}`, { token: owner.key }), 404);
    expect((await call('GET', `/api/v1/tenants/${owner.tenantId}/filter-lists`, { token: owner.key })).body.items).toEqual([]);
    expect(await audited('filter-list.delete', created.body.id)).toMatchObject({ detail: { value: 'gone.example' } });
    const reader = await tenant(['tenants:read']);
    expectProblem(await call('POST', `/api/v1/tenants/${reader.tenantId}/filter-lists`, { token: reader.key, body: { list: 'block', kind: 'domain', value: 'x.example' } }), 403);
  });
});
