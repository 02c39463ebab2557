import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MoatError } from '@moat/runtime';
import { createTestEnv, testPool, type TestEnv } from '@moat/testkit';
import { clientAddress, OutboundIpRepository, outboundRange } from './outbound-ips.js';
import { generateSmtpPassword, hashSmtpPassword, isSmtpUsername, SmtpCredentialRepository, verifySmtpPassword } from './smtp-credentials.js';
import { TenantRepository } from './tenants.js';

let t: TestEnv;
let db: ReturnType<typeof testPool>;
let tenants: TenantRepository;
let credentials: SmtpCredentialRepository;
let ips: OutboundIpRepository;
let n = 0;

beforeAll(async () => {
  t = await createTestEnv();
  db = testPool(t);
  tenants = new TenantRepository(db);
  credentials = new SmtpCredentialRepository(db);
  ips = new OutboundIpRepository(db);
}, 60_000);

afterAll(async () => {
  await db?.end();
  await t?.cleanup();
});

const tenant = async () => (await tenants.createTenant({ name: `relay ${++n}` })).id;
const codeOf = (p: Promise<unknown>) => p.then(() => 'resolved', (err: unknown) => (err instanceof MoatError ? err.code : String(err)));

describe('SMTP passwords', () => {
  it('when a password is hashed, then the hash is scrypt with its parameters and salt, verifies that password only, and differs per hash', async () => {
    const password = generateSmtpPassword();
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const hash = await hashSmtpPassword(password);
    expect(hash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(hash).not.toContain(password);
    expect(await verifySmtpPassword(password, hash)).toBe(true);
    expect(await verifySmtpPassword(`${password}x`, hash)).toBe(false);
    expect(await verifySmtpPassword(password, await hashSmtpPassword(password))).toBe(true);
    expect(await hashSmtpPassword(password)).not.toBe(hash);
  });

  it('when the stored hash is not one, then nothing verifies against it', async () => {
    expect(await verifySmtpPassword('x', 'plain-text-password')).toBe(false);
    expect(await verifySmtpPassword('x', 'scrypt$16384$8$1$AAAA$')).toBe(false);
  });

  it('when usernames are judged, then 3–64 safe characters pass and spaces, colons or NULs do not', () => {
    expect(isSmtpUsername('relay@acme.example')).toBe(true);
    expect(isSmtpUsername('smtp-0a1b2c3d4e')).toBe(true);
    expect(isSmtpUsername('ab')).toBe(false);
    expect(isSmtpUsername('a b c')).toBe(false);
    expect(isSmtpUsername('user:x')).toBe(false);
    expect(isSmtpUsername('-lead')).toBe(false);
    expect(isSmtpUsername('a'.repeat(65))).toBe(false);
  });
});

describe('SmtpCredentialRepository', () => {
  it('when a credential is created, then the password is returned once, only a hash is stored, and it authenticates to its tenant', async () => {
    const tenantId = await tenant();
    const { credential, password } = await credentials.create(tenantId, { username: `Relay${n}@Acme.Example`, description: 'exchange' });
    expect(credential).toMatchObject({ tenantId, username: `relay${n}@acme.example`, description: 'exchange', revokedAt: null });
    const row = (await db.query('SELECT password_hash FROM smtp_credentials WHERE id = $1', [credential.id])).rows[0];
    expect(row.password_hash).toMatch(/^scrypt\$/);
    expect(row.password_hash).not.toContain(password);
    // Usernames compare case-insensitively, passwords exactly.
    expect(await credentials.authenticate(`RELAY${n}@acme.example`, password)).toEqual({ credentialId: credential.id, tenantId, username: credential.username });
    expect(await credentials.authenticate(credential.username, password.toUpperCase())).toBeNull();
    expect(await credentials.authenticate('nobody-here', password)).toBeNull();
  });

  it('when no username is given, then one is generated', async () => {
    const { credential } = await credentials.create(await tenant());
    expect(credential.username).toMatch(/^smtp-[0-9a-f]{10}$/);
  });

  it('when a credential is revoked, then it no longer authenticates, stays listed with its revocation time, and its username is not reused', async () => {
    const tenantId = await tenant();
    const { credential, password } = await credentials.create(tenantId, { username: `gone${n}` });
    const revoked = await credentials.revoke(credential.id);
    expect(revoked?.revokedAt).toEqual(expect.any(String));
    expect((await credentials.revoke(credential.id))?.revokedAt).toBe(revoked?.revokedAt);
    expect(await credentials.authenticate(credential.username, password)).toBeNull();
    expect((await credentials.list(tenantId)).map((c) => [c.id, c.revokedAt !== null])).toEqual([[credential.id, true]]);
    expect(await codeOf(credentials.create(await tenant(), { username: credential.username }))).toBe('CONFLICT');
    expect(await credentials.revoke('00000000-0000-4000-8000-000000000000')).toBeNull();
  });

  it('when the username is invalid or the tenant unknown, then the error says so', async () => {
    expect(await codeOf(credentials.create(await tenant(), { username: 'a b' }))).toBe('VALIDATION_FAILED');
    expect(await codeOf(credentials.create('00000000-0000-4000-8000-000000000000'))).toBe('NOT_FOUND');
  });

  it('when tenants list credentials, then each sees only its own', async () => {
    const a = await tenant();
    const b = await tenant();
    const ca = await credentials.create(a);
    await credentials.create(b);
    expect((await credentials.list(a)).map((c) => c.id)).toEqual([ca.credential.id]);
  });
});

describe('outbound ranges', () => {
  it('when a range is written, then a bare address is one address and the spelling is normalised', () => {
    expect(outboundRange('192.0.2.10')).toBe('192.0.2.10/32');
    expect(outboundRange(' 2001:DB8:0001::/48 ')).toBe('2001:db8:1::/48');
    expect(outboundRange('2001:db8::5')).toBe('2001:db8::5/128');
    expect(() => outboundRange('192.0.2.1/24')).toThrow(/host bits set; did you mean 192\.0\.2\.0\/24/);
    expect(() => outboundRange('mail.example')).toThrow(MoatError);
  });

  it('when a client address is IPv4-mapped IPv6, then it is compared as IPv4', () => {
    expect(clientAddress('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(clientAddress('2001:db8::1')).toBe('2001:db8::1');
    expect(clientAddress('not-an-ip')).toBeNull();
  });
});

describe('OutboundIpRepository', () => {
  it('when ranges are registered, then client addresses inside them name the tenant, IPv4 and IPv6, and others name none', async () => {
    const tenantId = await tenant();
    const v4 = await ips.add(tenantId, { cidr: '198.51.100.0/24', description: 'office' });
    const v6 = await ips.add(tenantId, { cidr: '2001:DB8:AA::/48' });
    expect(v4).toMatchObject({ tenantId, cidr: '198.51.100.0/24', description: 'office' });
    expect(v6.cidr).toBe('2001:db8:aa::/48');
    expect(await ips.tenantForAddress('198.51.100.77')).toBe(tenantId);
    expect(await ips.tenantForAddress('::ffff:198.51.100.77')).toBe(tenantId);
    expect(await ips.tenantForAddress('2001:db8:aa:1::25')).toBe(tenantId);
    expect(await ips.tenantForAddress('198.51.101.1')).toBeNull();
    expect(await ips.tenantForAddress('2001:db8:ab::1')).toBeNull();
    expect(await ips.tenantForAddress('garbage')).toBeNull();
    expect((await ips.list(tenantId)).map((i) => i.cidr)).toEqual(['198.51.100.0/24', '2001:db8:aa::/48']);
  });

  it('when a range overlaps a registered one, then it is a conflict: the own range is named, another tenant’s is not', async () => {
    const a = await tenant();
    const b = await tenant();
    await ips.add(a, { cidr: '203.0.113.0/25' });
    // Outside the /25: no overlap.
    expect((await ips.add(a, { cidr: '203.0.113.200' })).cidr).toBe('203.0.113.200/32');
    await expect(ips.add(a, { cidr: '203.0.113.64/26' })).rejects.toThrow(/overlaps 203\.0\.113\.0\/25, which is already registered for this tenant/);
    const foreign = await ips.add(b, { cidr: '203.0.113.0/26' }).catch((e: MoatError) => e);
    expect(foreign).toMatchObject({ code: 'CONFLICT' });
    expect((foreign as MoatError).message).toMatch(/another organisation/);
    expect((foreign as MoatError).message).not.toContain('203.0.113.0/25');
  });

  it('when a range is deleted, then its addresses name no tenant any more', async () => {
    const tenantId = await tenant();
    const entry = await ips.add(tenantId, { cidr: '192.0.2.99' });
    expect(await ips.tenantForAddress('192.0.2.99')).toBe(tenantId);
    expect((await ips.delete(entry.id))?.cidr).toBe('192.0.2.99/32');
    expect(await ips.tenantForAddress('192.0.2.99')).toBeNull();
    expect(await ips.delete(entry.id)).toBeNull();
    expect(await ips.get(entry.id)).toBeNull();
  });
});

describe('outbound policy', () => {
  it('when the rate limit is set and cleared, then it reads back, and an unknown tenant gives null', async () => {
    const tenantId = await tenant();
    expect(await tenants.getOutboundPolicy(tenantId)).toEqual({ messagesPerMinute: null });
    expect(await tenants.setOutboundPolicy(tenantId, { messagesPerMinute: 120 })).toEqual({ messagesPerMinute: 120 });
    expect(await tenants.getOutboundPolicy(tenantId)).toEqual({ messagesPerMinute: 120 });
    expect(await tenants.setOutboundPolicy(tenantId, { messagesPerMinute: null })).toEqual({ messagesPerMinute: null });
    expect(await tenants.getOutboundPolicy('00000000-0000-4000-8000-000000000000')).toBeNull();
  });
});
