import { createPublicKey, sign, verify } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@moat/runtime';
import { DkimSigningKeys, keyringFromConfig } from '@moat/store';
import { createTestEnv, silentLog, testPool, type TestEnv } from '@moat/testkit';
import { configSchema, start, type GatewayService } from '../src/index.js';
import { type Answer, apiCaller, expectProblem } from './support/api.js';

// DKIM keys through the API against the real Postgres: the DNS record to publish, the private key
// that never leaves, activation and retirement, audit and tenant isolation. (Signing: the filter's
// test/dkim-signing.test.ts.)

let t: TestEnv;
let gateway: GatewayService;
let db: pg.Pool;
let base: string;
let operator: string;
/** Plays the filter: publishes the sealing key, and opens the private key of a domain's active key. */
let keys: DkimSigningKeys;


const call = apiCaller(() => base, () => operator);

let n = 0;
/** A tenant with one domain and a tenant key holding `scopes`. */
async function tenantWithDomain(scopes: string[] = ['*']): Promise<{ tenantId: string; domainId: string; domain: string; key: string }> {
  n++;
  const tenant = await call('POST', '/api/v1/tenants', { body: { name: `Signer ${n}` } });
  const domain = `sign${n}-${t.id}.example`;
  const d = await call('POST', `/api/v1/tenants/${tenant.body.id}/domains`, { body: { name: domain, routes: [{ host: '127.0.0.1', port: 2525, priority: 10 }] } });
  expect(d.status).toBe(201);
  const key = await call('POST', `/api/v1/tenants/${tenant.body.id}/api-keys`, { body: { name: 'k', scopes } });
  expect(key.status).toBe(201);
  return { tenantId: tenant.body.id, domainId: d.body.id, domain, key: key.body.key };
}

beforeAll(async () => {
  t = await createTestEnv();
  const config = loadConfig(configSchema, { ...t.env, MOAT_HTTP_PORT: '0', MOAT_HTTP_HOST: '127.0.0.1' });
  gateway = await start(config, silentLog);
  base = `http://127.0.0.1:${gateway.httpPort}`;
  operator = t.env.MOAT_BOOTSTRAP_TOKEN!;
  db = testPool(t);
  // The gateway's config has no master key (least privilege); the filter's side uses the test's.
  expect('MOAT_MASTER_KEY' in config).toBe(false);
  keys = new DkimSigningKeys(db, keyringFromConfig({ MOAT_MASTER_KEY: t.env.MOAT_MASTER_KEY!, MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' }));
});

afterAll(async () => {
  await gateway?.stop();
  await db?.end();
  await t?.cleanup();
});

describe('DKIM keys', () => {
  it('when no filter has published its sealing key yet, then creating a key answers 503 saying so; once published, 201', async () => {
    const { domainId } = await tenantWithDomain();
    const res = await call('POST', `/api/v1/domains/${domainId}/dkim-keys`, { body: {} });
    expectProblem(res, 503);
    expect(res.body.detail).toContain('start the filter');
    expect((await call('GET', `/api/v1/domains/${domainId}/dkim-keys`)).body.items).toEqual([]);
    await keys.publishSealingKey();
    expect((await call('POST', `/api/v1/domains/${domainId}/dkim-keys`, { body: {} })).status).toBe(201);
  });

  it('when a key is created, then it answers 201 with the TXT record to publish, whose public key matches the stored private key', async () => {
    const { domainId, domain, tenantId, key } = await tenantWithDomain();
    const res = await call('POST', `/api/v1/domains/${domainId}/dkim-keys`, { token: key, body: { selector: 'S2024', activate: true } });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/api/v1/domains/${domainId}/dkim-keys/${res.body.id}`);
    expect(res.body).toMatchObject({ domainId, tenantId, domain, selector: 's2024', algorithm: 'rsa-sha256', state: 'active', activatedAt: expect.any(String), retiredAt: null });
    const record = res.body.dnsRecord;
    expect(record.name).toBe(`s2024._domainkey.${domain}`);
    expect(record.type).toBe('TXT');
    const match = /^v=DKIM1; k=rsa; p=([A-Za-z0-9+/=]+)$/.exec(record.value);
    expect(match).not.toBeNull();
    expect(record.strings.join('')).toBe(record.value);
    const publicKey = createPublicKey({ key: Buffer.from(match![1]!, 'base64'), format: 'der', type: 'spki' });
    expect(publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    // The key the filter would sign with is the private half of the published one.
    const signing = await keys.activeSigningKey(domain);
    expect(signing?.keyId).toBe(res.body.id);
    expect(verify('sha256', Buffer.from('probe'), publicKey, sign('sha256', Buffer.from('probe'), signing!.privateKeyPem))).toBe(true);

    const audit = await db.query("SELECT actor, detail FROM audit_log WHERE action = 'dkim_key.create' AND target = $1", [res.body.id]);
    expect(audit.rows[0]?.actor).toMatch(/^k\//);
    expect(audit.rows[0]?.detail).toMatchObject({ domainId, domain, selector: 's2024', state: 'active' });
  });

  it('when a key is created without a body, then it gets a generated selector and stays pending; ed25519 can be asked for', async () => {
    const { domainId, domain } = await tenantWithDomain();
    const res = await call('POST', `/api/v1/domains/${domainId}/dkim-keys`);
    expect(res.status).toBe(201);
    expect(res.body.selector).toMatch(/^moat-\d{8}-[0-9a-f]{4}$/);
    expect(res.body.state).toBe('pending');
    expect(await keys.activeSigningKey(domain)).toBeNull();
    const ed = await call('POST', `/api/v1/domains/${domainId}/dkim-keys`, { body: { algorithm: 'ed25519-sha256' } });
    expect(ed.status).toBe(201);
    expect(ed.body.dnsRecord.value).toMatch(/^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
  });

  it('when keys are listed or read, then no private key material is in the answer', async () => {
    const { domainId } = await tenantWithDomain();
    const created = await call('POST', `/api/v1/domains/${domainId}/dkim-keys`, { body: { selector: 'list1' } });
    await call('POST', `/api/v1/domains/${domainId}/dkim-keys`, { body: { selector: 'list2', algorithm: 'ed25519-sha256' } });
    const list = await call('GET', `/api/v1/domains/${domainId}/dkim-keys`);
    expect(list.status).toBe(200);
    expect(list.body.items.map((k: { selector: string }) => k.selector)).toEqual(['list2', 'list1']);
    const one = await call('GET', `/api/v1/domains/${domainId}/dkim-keys/${created.body.id}`);
    expect(one.body).toEqual(list.body.items[1]);
    for (const answer of [created, list, one]) {
      expect(answer.text).not.toMatch(/PRIVATE KEY|privateKey|private_key|wrapped/i);
    }
    expect(Object.keys(one.body).sort()).toEqual(['activatedAt', 'algorithm', 'createdAt', 'dnsRecord', 'domain', 'domainId', 'id', 'retiredAt', 'selector', 'state', 'tenantId']);
  });

  it('when a pending key is activated, then it signs and the previous key is retired; a retired key cannot be activated again (409)', async () => {
    const { domainId, domain } = await tenantWithDomain();
    const old = await call('POST', `/api/v1/domains/${domainId}/dkim-keys`, { body: { selector: 'old', activate: true } });
    const next = await call('POST', `/api/v1/domains/${domainId}/dkim-keys`, { body: { selector: 'new' } });
    expect(next.body.state).toBe('pending');
    expect((await keys.activeSigningKey(domain))?.selector).toBe('old');

    const activated = await call('POST', `/api/v1/domains/${domainId}/dkim-keys/${next.body.id}/activate`);
    expect(activated.status).toBe(200);
    expect(activated.body).toMatchObject({ id: next.body.id, state: 'active', activatedAt: expect.any(String) });
    expect((await keys.activeSigningKey(domain))?.selector).toBe('new');
    const list = await call('GET', `/api/v1/domains/${domainId}/dkim-keys`);
    expect(list.body.items.map((k: { selector: string; state: string }) => `${k.selector}:${k.state}`)).toEqual(['new:active', 'old:retired']);
    const audit = await db.query("SELECT detail FROM audit_log WHERE action = 'dkim_key.activate' AND target = $1", [next.body.id]);
    expect(audit.rows[0]?.detail).toMatchObject({ retiredKeyId: old.body.id, retiredSelector: 'old' });

    // Activating the active key again is a no-op, audited once.
    expect((await call('POST', `/api/v1/domains/${domainId}/dkim-keys/${next.body.id}/activate`)).body.state).toBe('active');
    expect((await db.query("SELECT count(*)::int AS n FROM audit_log WHERE action = 'dkim_key.activate' AND target = $1", [next.body.id])).rows[0].n).toBe(1);

    const again = await call('POST', `/api/v1/domains/${domainId}/dkim-keys/${old.body.id}/activate`);
    expectProblem(again, 409);
    expect(again.body.detail).toContain('retired');
  });

  it('when the active key is deleted, then it is retired, still listed, and the domain has no signing key', async () => {
    const { domainId, domain } = await tenantWithDomain();
    const created = await call('POST', `/api/v1/domains/${domainId}/dkim-keys`, { body: { activate: true } });
    const retired = await call('DELETE', `/api/v1/domains/${domainId}/dkim-keys/${created.body.id}`);
    expect(retired.status).toBe(200);
    expect(retired.body).toMatchObject({ id: created.body.id, state: 'retired', retiredAt: expect.any(String) });
    expect(await keys.activeSigningKey(domain)).toBeNull();
    expect((await call('GET', `/api/v1/domains/${domainId}/dkim-keys`)).body.items).toEqual([retired.body]);
    const audit = await db.query("SELECT detail FROM audit_log WHERE action = 'dkim_key.retire' AND target = $1", [created.body.id]);
    expect(audit.rows[0]?.detail).toMatchObject({ wasActive: true });
    // Deleting again answers the same key, unchanged.
    expect((await call('DELETE', `/api/v1/domains/${domainId}/dkim-keys/${created.body.id}`)).body).toEqual(retired.body);
  });

  it('when another tenant’s domain or key is named, then 404, exactly like one that does not exist', async () => {
    const a = await tenantWithDomain();
    const b = await tenantWithDomain();
    const aKey = await call('POST', `/api/v1/domains/${a.domainId}/dkim-keys`, { token: a.key, body: { selector: 'mine', activate: true } });
    expect(aKey.status).toBe(201);
    expectProblem(await call('POST', `/api/v1/domains/${a.domainId}/dkim-keys`, { token: b.key, body: {} }), 404);
    expectProblem(await call('GET', `/api/v1/domains/${a.domainId}/dkim-keys`, { token: b.key }), 404);
    expectProblem(await call('POST', `/api/v1/domains/${a.domainId}/dkim-keys/${aKey.body.id}/activate`, { token: b.key }), 404);
    expectProblem(await call('DELETE', `/api/v1/domains/${a.domainId}/dkim-keys/${aKey.body.id}`, { token: b.key }), 404);
    // A's key named under B's own domain is not found either, and nothing changed.
    expectProblem(await call('DELETE', `/api/v1/domains/${b.domainId}/dkim-keys/${aKey.body.id}`, { token: b.key }), 404);
    expectProblem(await call('GET', '/api/v1/domains/00000000-0000-4000-8000-000000000000/dkim-keys'), 404);
    expectProblem(await call('GET', `/api/v1/domains/${a.domainId}/dkim-keys/not-a-uuid`), 404);
    expect((await keys.activeSigningKey(a.domain))?.keyId).toBe(aKey.body.id);
  });

  it('when the body or the scope is wrong, then 400 names the field, 409 a reused selector, 403 a read-only key', async () => {
    const { domainId, key } = await tenantWithDomain(['domains:read']);
    const bad = await call('POST', `/api/v1/domains/${domainId}/dkim-keys`, { body: { selector: 'bad selector', algorithm: 'rsa-sha1', extra: 1 } });
    expectProblem(bad, 400);
    expect(bad.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(['algorithm', 'extra', 'selector']);
    expect((await call('POST', `/api/v1/domains/${domainId}/dkim-keys`, { body: { selector: 'dup' } })).status).toBe(201);
    const dup = await call('POST', `/api/v1/domains/${domainId}/dkim-keys`, { body: { selector: 'DUP' } });
    expectProblem(dup, 409);
    expect(dup.body.detail).toContain('dup');
    expectProblem(await call('POST', `/api/v1/domains/${domainId}/dkim-keys`, { token: key, body: {} }), 403);
    expect((await call('GET', `/api/v1/domains/${domainId}/dkim-keys`, { token: key })).status).toBe(200);
  });
});
