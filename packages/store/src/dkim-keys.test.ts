import { createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, testPool, type TestEnv } from '@moat/testkit';
import { keyringFromConfig, type Keyring } from './crypto.js';
import { defaultDkimSelector, dkimDnsRecord, DkimKeyRepository, DkimSigningKeys, generateDkimKeyPair, isDkimSelector, type DkimKeyPair } from './dkim-keys.js';
import type { SealingKey } from './sealed-box.js';
import { TenantRepository } from './tenants.js';

let t: TestEnv;
let db: ReturnType<typeof testPool>;
let keyring: Keyring;
/** The gateway's side (no master key) and the filter's (the keyring). */
let repo: DkimKeyRepository;
let signing: DkimSigningKeys;
let sealingKey: SealingKey;
let tenants: TenantRepository;
let rsa: DkimKeyPair;
let n = 0;

beforeAll(async () => {
  t = await createTestEnv();
  db = testPool(t);
  keyring = keyringFromConfig({ MOAT_MASTER_KEY: t.env.MOAT_MASTER_KEY!, MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' });
  repo = new DkimKeyRepository(db);
  signing = new DkimSigningKeys(db, keyring);
  tenants = new TenantRepository(db);
  rsa = await generateDkimKeyPair('rsa-sha256');
}, 60_000);

afterAll(async () => {
  await db?.end();
  await t?.cleanup();
});

async function domain(): Promise<{ id: string; name: string; tenantId: string }> {
  n++;
  const tenant = await tenants.createTenant({ name: `dkim ${n}` });
  const d = await tenants.createDomain(tenant.id, { name: `dkim${n}-${t.id}.example`, routes: [{ host: '127.0.0.1', port: 25, priority: 10 }] });
  return { id: d.id, name: d.name, tenantId: tenant.id };
}

describe('DKIM key pairs', () => {
  it('when an RSA pair is generated, then it is 2048 bits, and the p= value is the DER public key of the private key', async () => {
    const pub = createPublicKey({ key: Buffer.from(rsa.publicKey, 'base64'), format: 'der', type: 'spki' });
    expect(pub.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const priv = createPrivateKey(rsa.privateKeyPem);
    const sig = sign('sha256', Buffer.from('x'), priv);
    expect(verify('sha256', Buffer.from('x'), pub, sig)).toBe(true);
  });

  it('when an Ed25519 pair is generated, then p= is the raw 32-byte key (RFC 8463) that verifies the private key’s signatures', async () => {
    const pair = await generateDkimKeyPair('ed25519-sha256');
    const raw = Buffer.from(pair.publicKey, 'base64');
    expect(raw).toHaveLength(32);
    const pub = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]), format: 'der', type: 'spki' });
    expect(verify(null, Buffer.from('x'), pub, sign(null, Buffer.from('x'), createPrivateKey(pair.privateKeyPem)))).toBe(true);
  });

  it('when the DNS record is built, then it is named <selector>._domainkey.<domain> and its value is cut into strings of at most 255', () => {
    const record = dkimDnsRecord('acme.example', 's1', 'rsa-sha256', rsa.publicKey);
    expect(record.name).toBe('s1._domainkey.acme.example');
    expect(record.type).toBe('TXT');
    expect(record.value).toBe(`v=DKIM1; k=rsa; p=${rsa.publicKey}`);
    expect(record.strings.length).toBeGreaterThan(1);
    expect(record.strings.every((s) => s.length <= 255)).toBe(true);
    expect(record.strings.join('')).toBe(record.value);
    expect(dkimDnsRecord('acme.example', 's1', 'ed25519-sha256', 'AAAA').value).toBe('v=DKIM1; k=ed25519; p=AAAA');
  });

  it('when a selector is checked, then DNS labels pass and anything else fails; the default selector is valid', () => {
    expect(isDkimSelector('s2024')).toBe(true);
    expect(isDkimSelector('mail.s1')).toBe(true);
    expect(isDkimSelector('-bad')).toBe(false);
    expect(isDkimSelector('has space')).toBe(false);
    expect(isDkimSelector('a..b')).toBe(false);
    expect(isDkimSelector('x'.repeat(64))).toBe(false);
    const generated = defaultDkimSelector(new Date('2024-11-27T10:00:00Z'));
    expect(generated).toMatch(/^moat-20241127-[0-9a-f]{4}$/);
    expect(isDkimSelector(generated)).toBe(true);
  });
});

describe('DkimKeyRepository', () => {
  it('when no filter has published its sealing key, then there is none; once published, the gateway side reads it', async () => {
    expect(await repo.sealingKey()).toBeNull();
    sealingKey = await signing.publishSealingKey();
    expect(sealingKey.keyId).toBe('k1');
    expect(await repo.sealingKey()).toEqual(sealingKey);
    // Publishing again (every filter start) changes nothing for the gateway.
    await signing.publishSealingKey();
    expect(await repo.sealingKey()).toEqual(sealingKey);
  });

  it('when a key is created, then it is pending, its private key is stored sealed, and it does not sign yet', async () => {
    const d = await domain();
    const { key, retired } = await repo.create({ domainId: d.id, selector: 'S1', pair: rsa, activate: false, sealingKey });
    expect(retired).toBeNull();
    expect(key).toMatchObject({ domainId: d.id, tenantId: d.tenantId, domain: d.name, selector: 's1', algorithm: 'rsa-sha256', publicKey: rsa.publicKey, state: 'pending', activatedAt: null, retiredAt: null });
    const row = await db.query('SELECT private_key, key_id FROM dkim_keys WHERE id = $1', [key.id]);
    expect((await repo.get(key.id))?.state).toBe('pending');
    expect(row.rows[0].key_id).toBe('k1');
    expect((row.rows[0].private_key as Buffer).includes(Buffer.from('PRIVATE KEY'))).toBe(false);
    expect(await signing.activeSigningKey(d.name)).toBeNull();
  });

  it('when a key is activated, then it signs for its domain with the private key opened, and rotation retires the previous one', async () => {
    const d = await domain();
    const first = await repo.create({ domainId: d.id, selector: 'one', pair: rsa, activate: true, sealingKey });
    expect(first.key.state).toBe('active');
    expect(first.key.activatedAt).not.toBeNull();
    const opened = await signing.activeSigningKey(d.name);
    expect(opened).toEqual({ keyId: first.key.id, tenantId: d.tenantId, domainId: d.id, domain: d.name, selector: 'one', algorithm: 'rsa-sha256', privateKeyPem: rsa.privateKeyPem });

    const ed = await generateDkimKeyPair('ed25519-sha256');
    const second = await repo.create({ domainId: d.id, selector: 'two', pair: ed, activate: false, sealingKey });
    expect((await signing.activeSigningKey(d.name))?.selector).toBe('one');
    const switched = await repo.activate(second.key.id);
    expect(switched.key.state).toBe('active');
    expect(switched.retired).toMatchObject({ id: first.key.id, state: 'retired' });
    expect(await signing.activeSigningKey(d.name)).toMatchObject({ selector: 'two', algorithm: 'ed25519-sha256', privateKeyPem: ed.privateKeyPem });
    expect((await repo.listForDomain(d.id)).map((k) => [k.selector, k.state])).toEqual([
      ['two', 'active'],
      ['one', 'retired'],
    ]);
  });

  it('when the active key is activated again, then nothing changes; a retired key cannot come back (CONFLICT)', async () => {
    const d = await domain();
    const a = await repo.create({ domainId: d.id, selector: 'a', pair: rsa, activate: true, sealingKey });
    const again = await repo.activate(a.key.id);
    expect(again).toEqual({ key: a.key, retired: null });
    await repo.create({ domainId: d.id, selector: 'b', pair: rsa, activate: true, sealingKey });
    await expect(repo.activate(a.key.id)).rejects.toMatchObject({ code: 'CONFLICT' });
  });

  it('when two keys are activated at once, then exactly one is active afterwards', async () => {
    const d = await domain();
    const keys = await Promise.all(['c1', 'c2', 'c3'].map((selector) => repo.create({ domainId: d.id, selector, pair: rsa, activate: false, sealingKey })));
    await Promise.all(keys.map((k) => repo.activate(k.key.id)));
    const states = (await repo.listForDomain(d.id)).map((k) => k.state);
    expect(states.filter((s) => s === 'active')).toHaveLength(1);
    expect(states.filter((s) => s === 'retired')).toHaveLength(2);
  });

  it('when the active key is retired, then the domain has no signing key, and retiring again changes nothing', async () => {
    const d = await domain();
    const { key } = await repo.create({ domainId: d.id, selector: 'r', pair: rsa, activate: true, sealingKey });
    const retired = await repo.retire(key.id);
    expect(retired.state).toBe('retired');
    expect(retired.retiredAt).not.toBeNull();
    expect(await signing.activeSigningKey(d.name)).toBeNull();
    expect(await repo.retire(key.id)).toEqual(retired);
  });

  it('when a selector is reused within a domain, then CONFLICT; another domain may use it; an unknown domain or key is NOT_FOUND', async () => {
    const d = await domain();
    const other = await domain();
    const { key } = await repo.create({ domainId: d.id, selector: 'same', pair: rsa, activate: false, sealingKey });
    await repo.retire(key.id);
    await expect(repo.create({ domainId: d.id, selector: 'same', pair: rsa, activate: false, sealingKey })).rejects.toMatchObject({ code: 'CONFLICT' });
    expect((await repo.create({ domainId: other.id, selector: 'same', pair: rsa, activate: false, sealingKey })).key.selector).toBe('same');
    await expect(repo.create({ domainId: '00000000-0000-4000-8000-000000000000', selector: 'x', pair: rsa, activate: false, sealingKey })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(repo.activate('00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(repo.retire('00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('when the master key was rotated, then keys sealed under the previous one still open; without it, DECRYPT_FAILED', async () => {
    const d = await domain();
    await repo.create({ domainId: d.id, selector: 'old', pair: rsa, activate: true, sealingKey });
    const newKey = randomBytes(32).toString('base64');
    const rotated = new DkimSigningKeys(db, keyringFromConfig({ MOAT_MASTER_KEY: newKey, MOAT_MASTER_KEY_ID: 'k2', MOAT_PREVIOUS_MASTER_KEYS: `k1:${t.env.MOAT_MASTER_KEY}` }));
    expect((await rotated.activeSigningKey(d.name))?.privateKeyPem).toBe(rsa.privateKeyPem);
    const forgotten = new DkimSigningKeys(db, keyringFromConfig({ MOAT_MASTER_KEY: newKey, MOAT_MASTER_KEY_ID: 'k2', MOAT_PREVIOUS_MASTER_KEYS: '' }));
    await expect(forgotten.activeSigningKey(d.name)).rejects.toMatchObject({ code: 'DECRYPT_FAILED', permanent: true });
    // The rotated filter publishes its new sealing key; new keys are sealed to it from then on.
    const k2 = await rotated.publishSealingKey();
    expect(k2.keyId).toBe('k2');
    expect(await repo.sealingKey()).toEqual(k2);
    const fresh = await domain();
    await repo.create({ domainId: fresh.id, selector: 'new', pair: rsa, activate: true, sealingKey: k2 });
    expect((await rotated.activeSigningKey(fresh.name))?.privateKeyPem).toBe(rsa.privateKeyPem);
    await expect(signing.activeSigningKey(fresh.name)).rejects.toMatchObject({ code: 'DECRYPT_FAILED' });
  });

  it('when a sealed private key is moved to another row, then it does not open (the row id is bound to it)', async () => {
    const d = await domain();
    const a = await repo.create({ domainId: d.id, selector: 'a', pair: rsa, activate: false, sealingKey });
    const b = await repo.create({ domainId: d.id, selector: 'b', pair: await generateDkimKeyPair('rsa-sha256'), activate: true, sealingKey });
    await db.query(
      `UPDATE dkim_keys t SET key_id = s.key_id, ephemeral_key = s.ephemeral_key, iv = s.iv, tag = s.tag, private_key = s.private_key
         FROM dkim_keys s WHERE s.id = $1 AND t.id = $2`,
      [a.key.id, b.key.id],
    );
    await expect(signing.activeSigningKey(d.name)).rejects.toMatchObject({ code: 'DECRYPT_FAILED' });
  });
});
