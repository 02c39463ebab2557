import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@moat/runtime';
import { SmtpCredentialRepository } from '@moat/store';
import { createTestEnv, silentLog, testPool, type TestEnv } from '@moat/testkit';
import { configSchema, start, type GatewayService } from '../src/index.js';
import { type Answer, apiCaller, expectProblem } from './support/api.js';

// The outbound relay's API against the real Postgres: SMTP credentials (password shown once,
// stored hashed, revocation), sending ranges (normalised, no overlaps, tenant isolation), the rate
// limit, scopes and the audit log. (The SMTP side: tests/outbound.test.ts.)

let t: TestEnv;
let gateway: GatewayService;
let db: pg.Pool;
let base: string;
let operator: string;


const call = apiCaller(() => base, () => operator);

let n = 0;
/** A tenant and a tenant key holding `scopes`. */
async function tenant(scopes: string[] = ['*']): Promise<{ tenantId: string; key: string }> {
  n++;
  const created = await call('POST', '/api/v1/tenants', { body: { name: `Relay ${n}` } });
  expect(created.status).toBe(201);
  const key = await call('POST', `/api/v1/tenants/${created.body.id}/api-keys`, { body: { name: 'k', scopes } });
  expect(key.status).toBe(201);
  return { tenantId: created.body.id, key: key.body.key };
}

async function audit(action: string, target: string): Promise<{ actor: string; detail: Record<string, unknown> } | undefined> {
  return (await db.query('SELECT actor, detail FROM audit_log WHERE action = $1 AND target = $2', [action, target])).rows[0];
}

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

describe('SMTP credentials', () => {
  it('when a credential is created, then 201 answers the password once with a Location, only a hash is stored, it authenticates, and the creation is audited without the password', async () => {
    const { tenantId, key } = await tenant();
    const res = await call('POST', `/api/v1/tenants/${tenantId}/smtp-credentials`, { token: key, body: { username: `Relay${n}@Acme.Example`, description: 'head office' } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ id: expect.any(String), tenantId, username: `relay${n}@acme.example`, description: 'head office', revokedAt: null, password: expect.stringMatching(/^[A-Za-z0-9_-]{32}$/) });
    expect(res.headers.get('location')).toBe(`/api/v1/tenants/${tenantId}/smtp-credentials/${res.body.id}`);
    const stored = (await db.query('SELECT password_hash FROM smtp_credentials WHERE id = $1', [res.body.id])).rows[0];
    expect(stored.password_hash).toMatch(/^scrypt\$/);
    expect(stored.password_hash).not.toContain(res.body.password);
    expect(await new SmtpCredentialRepository(db).authenticate(res.body.username, res.body.password)).toMatchObject({ tenantId, credentialId: res.body.id });

    // Never shown again.
    const listed = await call('GET', `/api/v1/tenants/${tenantId}/smtp-credentials`, { token: key });
    expect(listed.body.items).toEqual([{ id: res.body.id, tenantId, username: res.body.username, description: 'head office', createdAt: expect.any(String), revokedAt: null }]);
    const one = await call('GET', `/api/v1/tenants/${tenantId}/smtp-credentials/${res.body.id}`, { token: key });
    expect(one.status).toBe(200);
    expect(one.body.password).toBeUndefined();

    const entry = await audit('smtp-credential.create', res.body.id);
    expect(entry?.actor).toMatch(/^k\//);
    expect(entry?.detail).toEqual({ tenantId, username: res.body.username });
    expect(JSON.stringify(entry)).not.toContain(res.body.password);
  });

  it('when the body is left out, then a username is generated', async () => {
    const { tenantId } = await tenant();
    const res = await call('POST', `/api/v1/tenants/${tenantId}/smtp-credentials`);
    expect(res.status).toBe(201);
    expect(res.body.username).toMatch(/^smtp-[0-9a-f]{10}$/);
  });

  it('when a credential is revoked, then it answers 200 revoked, no longer authenticates, is audited once, and its username cannot be taken again (409)', async () => {
    const { tenantId } = await tenant();
    const created = await call('POST', `/api/v1/tenants/${tenantId}/smtp-credentials`, { body: { username: `gone${n}` } });
    const revoked = await call('DELETE', `/api/v1/tenants/${tenantId}/smtp-credentials/${created.body.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revokedAt).toEqual(expect.any(String));
    expect(await new SmtpCredentialRepository(db).authenticate(created.body.username, created.body.password)).toBeNull();
    expect((await call('DELETE', `/api/v1/tenants/${tenantId}/smtp-credentials/${created.body.id}`)).body.revokedAt).toBe(revoked.body.revokedAt);
    expect((await db.query("SELECT count(*)::int AS n FROM audit_log WHERE action = 'smtp-credential.revoke' AND target = $1", [created.body.id])).rows[0].n).toBe(1);
    const again = await call('POST', `/api/v1/tenants/${tenantId}/smtp-credentials`, { body: { username: `gone${n}` } });
    expectProblem(again, 409);
    expect(again.body.detail).toContain('never reused');
  });

  it('when the username is invalid or a field unknown, then 400 names the field', async () => {
    const { tenantId } = await tenant();
    const bad = await call('POST', `/api/v1/tenants/${tenantId}/smtp-credentials`, { body: { username: 'has space' } });
    expectProblem(bad, 400);
    expect(bad.body.errors.map((e: { field: string }) => e.field)).toEqual(['username']);
    const unknown = await call('POST', `/api/v1/tenants/${tenantId}/smtp-credentials`, { body: { password: 'mine' } });
    expectProblem(unknown, 400);
    expect(unknown.body.errors).toEqual([{ field: 'password', message: 'unknown field' }]);
  });
});

describe('outbound IPs', () => {
  it('when ranges are registered, then they are normalised (one address is /32 or /128), listed, readable and audited', async () => {
    const { tenantId, key } = await tenant();
    const v4 = await call('POST', `/api/v1/tenants/${tenantId}/outbound-ips`, { token: key, body: { cidr: '198.51.100.25', description: 'exchange' } });
    expect(v4.status).toBe(201);
    expect(v4.body).toMatchObject({ tenantId, cidr: '198.51.100.25/32', description: 'exchange' });
    expect(v4.headers.get('location')).toBe(`/api/v1/tenants/${tenantId}/outbound-ips/${v4.body.id}`);
    const v6 = await call('POST', `/api/v1/tenants/${tenantId}/outbound-ips`, { token: key, body: { cidr: '2001:DB8:0:12::/64' } });
    expect(v6.body.cidr).toBe('2001:db8:0:12::/64');
    expect((await call('GET', `/api/v1/tenants/${tenantId}/outbound-ips`, { token: key })).body.items.map((i: { cidr: string }) => i.cidr)).toEqual(['198.51.100.25/32', '2001:db8:0:12::/64']);
    expect((await call('GET', `/api/v1/tenants/${tenantId}/outbound-ips/${v4.body.id}`, { token: key })).body.cidr).toBe('198.51.100.25/32');
    expect((await audit('outbound-ip.create', v4.body.id))?.detail).toEqual({ tenantId, cidr: '198.51.100.25/32' });
  });

  it('when a range is not one, then 400 names the field and says what is wrong', async () => {
    const { tenantId } = await tenant();
    const res = await call('POST', `/api/v1/tenants/${tenantId}/outbound-ips`, { body: { cidr: '198.51.100.1/24' } });
    expectProblem(res, 400);
    expect(res.body.errors).toEqual([{ field: 'cidr', message: expect.stringContaining('did you mean 198.51.100.0/24') }]);
    expectProblem(await call('POST', `/api/v1/tenants/${tenantId}/outbound-ips`, { body: { cidr: 'mail.acme.example' } }), 400);
  });

  it('when a range overlaps one of another tenant, then 409 without naming it; the own overlap is named', async () => {
    const a = await tenant();
    const b = await tenant();
    expect((await call('POST', `/api/v1/tenants/${a.tenantId}/outbound-ips`, { body: { cidr: '203.0.113.0/28' } })).status).toBe(201);
    const own = await call('POST', `/api/v1/tenants/${a.tenantId}/outbound-ips`, { body: { cidr: '203.0.113.5' } });
    expectProblem(own, 409);
    expect(own.body.detail).toContain('203.0.113.0/28');
    const foreign = await call('POST', `/api/v1/tenants/${b.tenantId}/outbound-ips`, { body: { cidr: '203.0.113.0/24' } });
    expectProblem(foreign, 409);
    expect(foreign.body.detail).toContain('another organisation');
    expect(foreign.body.detail).not.toContain('203.0.113.0/28');
  });

  it('when a range is deleted, then it is gone and the deletion is audited', async () => {
    const { tenantId } = await tenant();
    const created = await call('POST', `/api/v1/tenants/${tenantId}/outbound-ips`, { body: { cidr: '192.0.2.200' } });
    const removed = await call('DELETE', `/api/v1/tenants/${tenantId}/outbound-ips/${created.body.id}`);
    expect(removed.status).toBe(200);
    expect(removed.body.cidr).toBe('192.0.2.200/32');
    expectProblem(await call('GET', `/api/v1/tenants/${tenantId}/outbound-ips/${created.body.id}`), 404);
    expectProblem(await call('DELETE', `/api/v1/tenants/${tenantId}/outbound-ips/${created.body.id}`), 404);
    expect(await audit('outbound-ip.delete', created.body.id)).toBeDefined();
  });
});

describe('outbound policy', () => {
  it('when the rate limit is set, then it reads back, null restores the default, and the change is audited', async () => {
    const { tenantId, key } = await tenant();
    expect((await call('GET', `/api/v1/tenants/${tenantId}/outbound-policy`, { token: key })).body).toEqual({ messagesPerMinute: null });
    const set = await call('PATCH', `/api/v1/tenants/${tenantId}/outbound-policy`, { token: key, body: { messagesPerMinute: 30 } });
    expect(set.status).toBe(200);
    expect(set.body).toEqual({ messagesPerMinute: 30 });
    expect((await call('GET', `/api/v1/tenants/${tenantId}/outbound-policy`, { token: key })).body).toEqual({ messagesPerMinute: 30 });
    expect((await audit('tenant.outbound-policy', tenantId))?.detail).toEqual({ messagesPerMinute: 30 });
    expect((await call('PATCH', `/api/v1/tenants/${tenantId}/outbound-policy`, { token: key, body: { messagesPerMinute: null } })).body).toEqual({ messagesPerMinute: null });
  });

  it('when the limit is not a positive whole number, then 400 names the field', async () => {
    const { tenantId } = await tenant();
    for (const messagesPerMinute of [0, -5, 1.5, 'many']) {
      const res = await call('PATCH', `/api/v1/tenants/${tenantId}/outbound-policy`, { body: { messagesPerMinute } });
      expectProblem(res, 400);
      expect(res.body.errors[0].field).toBe('messagesPerMinute');
    }
  });
});

describe('isolation and scopes', () => {
  it('when a tenant key reaches for another tenant’s credentials or ranges, then 404, as if they did not exist', async () => {
    const a = await tenant();
    const b = await tenant();
    const cred = await call('POST', `/api/v1/tenants/${a.tenantId}/smtp-credentials`, { token: a.key });
    const ip = await call('POST', `/api/v1/tenants/${a.tenantId}/outbound-ips`, { token: a.key, body: { cidr: '192.0.2.210' } });
    for (const [method, path] of [
      ['GET', `/api/v1/tenants/${a.tenantId}/smtp-credentials`],
      ['POST', `/api/v1/tenants/${a.tenantId}/smtp-credentials`],
      ['DELETE', `/api/v1/tenants/${a.tenantId}/smtp-credentials/${cred.body.id}`],
      ['GET', `/api/v1/tenants/${a.tenantId}/outbound-ips`],
      ['DELETE', `/api/v1/tenants/${a.tenantId}/outbound-ips/${ip.body.id}`],
      ['GET', `/api/v1/tenants/${a.tenantId}/outbound-policy`],
      // B's own tenant path with A's ids: not B's.
      ['DELETE', `/api/v1/tenants/${b.tenantId}/smtp-credentials/${cred.body.id}`],
      ['DELETE', `/api/v1/tenants/${b.tenantId}/outbound-ips/${ip.body.id}`],
    ] as const) {
      expectProblem(await call(method, path, { token: b.key }), 404);
    }
    // Nothing changed.
    expect((await call('GET', `/api/v1/tenants/${a.tenantId}/smtp-credentials/${cred.body.id}`, { token: a.key })).body.revokedAt).toBeNull();
    expect((await call('GET', `/api/v1/tenants/${a.tenantId}/outbound-ips/${ip.body.id}`, { token: a.key })).status).toBe(200);
  });

  it('when a key lacks the outbound scopes, then 403 names the scope; outbound:read reads but does not write', async () => {
    const { tenantId } = await tenant(['tenants:read']);
    const reader = await call('POST', `/api/v1/tenants/${tenantId}/api-keys`, { body: { name: 'reader', scopes: ['outbound:read'] } });
    const none = await call('GET', `/api/v1/tenants/${tenantId}/smtp-credentials`, { token: (await call('POST', `/api/v1/tenants/${tenantId}/api-keys`, { body: { name: 'x', scopes: ['tenants:read'] } })).body.key });
    expectProblem(none, 403);
    expect(none.body.detail).toContain('outbound:read');
    expect((await call('GET', `/api/v1/tenants/${tenantId}/outbound-ips`, { token: reader.body.key })).status).toBe(200);
    const write = await call('POST', `/api/v1/tenants/${tenantId}/smtp-credentials`, { token: reader.body.key });
    expectProblem(write, 403);
    expect(write.body.detail).toContain('outbound:write');
  });

  it('when the OpenAPI document is read, then it lists every outbound path', async () => {
    const doc = (await call('GET', '/api/v1/openapi.json')).body;
    for (const path of ['/api/v1/tenants/{tenantId}/smtp-credentials', '/api/v1/tenants/{tenantId}/smtp-credentials/{credentialId}', '/api/v1/tenants/{tenantId}/outbound-ips', '/api/v1/tenants/{tenantId}/outbound-ips/{ipId}', '/api/v1/tenants/{tenantId}/outbound-policy']) {
      expect(doc.paths[path], path).toBeDefined();
    }
    expect(Object.keys(doc.paths['/api/v1/tenants/{tenantId}/smtp-credentials'])).toEqual(['post', 'get']);
  });
});

// The SMTP-time policy (greylisting) sits beside the outbound policy: per tenant, read and
// changed by the tenant, applied by ingress (tests/smtp-checks.test.ts is its SMTP side).
describe('smtp policy', () => {
  it('when a field is changed, then the others keep their value, it reads back, and the change is audited', async () => {
    const { tenantId, key } = await tenant();
    const defaults = { greylisting: { enabled: false, delaySeconds: 300, retryWindowHours: 48, passTtlDays: 35 } };
    expect((await call('GET', `/api/v1/tenants/${tenantId}/smtp-policy`, { token: key })).body).toEqual(defaults);
    const set = await call('PATCH', `/api/v1/tenants/${tenantId}/smtp-policy`, { token: key, body: { greylisting: { enabled: true } } });
    expect(set.status).toBe(200);
    expect(set.body).toEqual({ greylisting: { ...defaults.greylisting, enabled: true } });
    const delay = await call('PATCH', `/api/v1/tenants/${tenantId}/smtp-policy`, { token: key, body: { greylisting: { delaySeconds: 60 } } });
    expect(delay.body).toEqual({ greylisting: { ...defaults.greylisting, enabled: true, delaySeconds: 60 } });
    expect((await call('GET', `/api/v1/tenants/${tenantId}/smtp-policy`, { token: key })).body).toEqual(delay.body);
    expect((await audit('tenant.smtp-policy', tenantId))?.detail).toMatchObject({ greylisting: { enabled: true } });
  });

  it('when a value is out of range or unknown, then 400 names the field', async () => {
    const { tenantId } = await tenant();
    for (const body of [{ greylisting: { delaySeconds: 0 } }, { greylisting: { passTtlDays: 400 } }, { greylisting: { enabled: 'yes' } }, { greylisting: { delay: 5 } }]) {
      const res = await call('PATCH', `/api/v1/tenants/${tenantId}/smtp-policy`, { body });
      expectProblem(res, 400);
      expect(JSON.stringify(res.body.errors)).toContain(Object.keys(body.greylisting)[0]!);
    }
  });

  it('when another tenant’s key reads or changes it, then 404; without tenants:write, 403', async () => {
    const a = await tenant();
    const b = await tenant();
    expectProblem(await call('GET', `/api/v1/tenants/${a.tenantId}/smtp-policy`, { token: b.key }), 404);
    expectProblem(await call('PATCH', `/api/v1/tenants/${a.tenantId}/smtp-policy`, { token: b.key, body: { greylisting: { enabled: true } } }), 404);
    const reader = await tenant(['tenants:read']);
    expect((await call('GET', `/api/v1/tenants/${reader.tenantId}/smtp-policy`, { token: reader.key })).status).toBe(200);
    const write = await call('PATCH', `/api/v1/tenants/${reader.tenantId}/smtp-policy`, { token: reader.key, body: { greylisting: { enabled: true } } });
    expectProblem(write, 403);
    expect(write.body.detail).toContain('tenants:write');
    expect((await call('GET', `/api/v1/tenants/${a.tenantId}/smtp-policy`, { token: a.key })).body.greylisting.enabled).toBe(false);
  });
});
