import { generateKeyPair, randomBytes, randomUUID } from 'node:crypto';
import { inTransaction, MoatError, type Pool } from '@moat/runtime';
import type { Keyring } from './crypto.js';
import { openBox, sealingKeyOf, sealTo, type SealingKey } from './sealed-box.js';

// =============================================================================================
// DKIM keys of protected domains (RFC 6376). Private keys are sealed at rest to the message
// store's keyring (a sealed box: the gateway that generates them holds no master key); they are
// opened only by the filter, to sign, and never leave through the API.
// =============================================================================================

/** RSA (RFC 6376 §3.3.1) and Ed25519 (RFC 8463): the two signing algorithms receivers verify. */
export const dkimAlgorithms = ['rsa-sha256', 'ed25519-sha256'] as const;
export type DkimAlgorithm = (typeof dkimAlgorithms)[number];

/**
 * pending: created, its DNS record (presumably) being published, not signing yet;
 * active: signs the domain's outbound mail (at most one per domain);
 * retired: no longer signs, for good (its DNS record can be removed once mail signed with it is delivered).
 */
export const dkimKeyStates = ['pending', 'active', 'retired'] as const;
export type DkimKeyState = (typeof dkimKeyStates)[number];

/**
 * RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits and SHOULD use 2048. 2048 is also
 * the largest key whose p= value (392 characters) DNS hosting panels commonly accept in one record.
 */
export const dkimRsaBits = 2048;

/** RFC 6376 §3.1 selector: dot-separated DNS labels; stored lower-case. */
const selectorPattern = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function isDkimSelector(value: string): boolean {
  return value.length <= 253 && selectorPattern.test(value.toLowerCase());
}

/** A selector nobody picked: `moat-<yyyymmdd>-<4 hex>`, the date telling an operator how old a key is. */
export function defaultDkimSelector(now: Date = new Date()): string {
  return `moat-${now.toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(2).toString('hex')}`;
}

export interface DkimKeyPair {
  algorithm: DkimAlgorithm;
  /** The DNS record's p= value: base64 DER SubjectPublicKeyInfo (RSA) or the raw 32-byte key (Ed25519, RFC 8463 §4). */
  publicKey: string;
  /** PKCS#8 PEM: what mailauth's signer takes. */
  privateKeyPem: string;
}

const encoding = { publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } } as const;

/** The pair as DER SubjectPublicKeyInfo and PKCS#8 PEM, generated off the event loop. */
function generateEncoded(type: 'rsa' | 'ed25519'): Promise<{ publicKey: Buffer; privateKey: string }> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, publicKey: Buffer, privateKey: string) => (err ? reject(err) : resolve({ publicKey, privateKey }));
    if (type === 'rsa') generateKeyPair('rsa', { modulusLength: dkimRsaBits, ...encoding }, done);
    else generateKeyPair('ed25519', encoding, done);
  });
}

/** A fresh key pair; asynchronous, because an RSA key takes tens of milliseconds of CPU. */
export async function generateDkimKeyPair(algorithm: DkimAlgorithm): Promise<DkimKeyPair> {
  if (algorithm === 'rsa-sha256') {
    const { publicKey, privateKey } = await generateEncoded('rsa');
    return { algorithm, publicKey: publicKey.toString('base64'), privateKeyPem: privateKey };
  }
  const { publicKey, privateKey } = await generateEncoded('ed25519');
  // The SPKI of an Ed25519 key is a fixed 12-byte prefix and the 32-byte key; DNS carries the key alone.
  return { algorithm, publicKey: publicKey.subarray(publicKey.length - 32).toString('base64'), privateKeyPem: privateKey };
}

export interface DkimDnsRecord {
  /** `<selector>._domainkey.<domain>` (RFC 6376 §3.6.2.1). */
  name: string;
  type: 'TXT';
  /** The record's text (RFC 6376 §3.6.1 tags). */
  value: string;
  /** The value cut into character-strings of at most 255 octets (RFC 1035 §3.3.14), as a zone file needs them. */
  strings: string[];
}

export function dkimDnsRecord(domain: string, selector: string, algorithm: DkimAlgorithm, publicKey: string): DkimDnsRecord {
  const value = `v=DKIM1; k=${algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519'}; p=${publicKey}`;
  const strings: string[] = [];
  for (let i = 0; i < value.length; i += 255) strings.push(value.slice(i, i + 255));
  return { name: `${selector}._domainkey.${domain}`, type: 'TXT', value, strings };
}

/** A key as the API shows it: everything but the private key. */
export interface DkimKey {
  id: string;
  domainId: string;
  tenantId: string;
  domain: string;
  selector: string;
  algorithm: DkimAlgorithm;
  publicKey: string;
  state: DkimKeyState;
  createdAt: string;
  activatedAt: string | null;
  retiredAt: string | null;
}

/** What the filter signs with: the opened private key and the d=/s= it belongs to. */
export interface DkimSigningKey {
  keyId: string;
  tenantId: string;
  domainId: string;
  /** The signing domain (d=). */
  domain: string;
  selector: string;
  algorithm: DkimAlgorithm;
  privateKeyPem: string;
}

interface KeyRow {
  id: string;
  domain_id: string;
  tenant_id: string;
  domain: string;
  selector: string;
  algorithm: DkimAlgorithm;
  public_key: string;
  state: DkimKeyState;
  created_at: Date;
  activated_at: Date | null;
  retired_at: Date | null;
}

function toKey(r: KeyRow): DkimKey {
  return {
    id: r.id,
    domainId: r.domain_id,
    tenantId: r.tenant_id,
    domain: r.domain,
    selector: r.selector,
    algorithm: r.algorithm,
    publicKey: r.public_key,
    state: r.state,
    createdAt: r.created_at.toISOString(),
    activatedAt: r.activated_at ? r.activated_at.toISOString() : null,
    retiredAt: r.retired_at ? r.retired_at.toISOString() : null,
  };
}

const keyColumns = 'k.id, k.domain_id, d.tenant_id, d.name AS domain, k.selector, k.algorithm, k.public_key, k.state, k.created_at, k.activated_at, k.retired_at';

/** The additional data a private key is sealed with: the row it belongs to. */
function sealingContext(id: string): string {
  return `dkim-key:${id}`;
}

type Queryable = Pick<Pool, 'query'>;

/** Keys as the API manages them; needs no master key (it seals to the published sealing key). */
export class DkimKeyRepository {
  constructor(private readonly pool: Pool) {}

  /** The newest published sealing key; null until a filter has started once. */
  async sealingKey(): Promise<SealingKey | null> {
    const res = await this.pool.query<{ key_id: string; public_key: Buffer }>('SELECT key_id, public_key FROM dkim_sealing_keys ORDER BY published_at DESC, key_id LIMIT 1');
    const r = res.rows[0];
    return r ? { keyId: r.key_id, publicKey: r.public_key } : null;
  }

  /**
   * Stores a key for a domain, its private key sealed to `sealingKey`; `pending`, or `active` at
   * once (retiring the active one). NOT_FOUND when the domain does not exist; CONFLICT when the
   * domain already has the selector.
   */
  async create(input: { domainId: string; selector: string; pair: DkimKeyPair; activate: boolean; sealingKey: SealingKey }): Promise<{ key: DkimKey; retired: DkimKey | null }> {
    const selector = input.selector.toLowerCase();
    const id = randomUUID();
    const box = sealTo(input.sealingKey, Buffer.from(input.pair.privateKeyPem, 'utf8'), sealingContext(id));
    return inTransaction(this.pool, async (client) => {
      if (!(await this.lockDomain(client, input.domainId))) throw new MoatError('NOT_FOUND', `domain ${input.domainId} does not exist`);
      try {
        await client.query(
          `INSERT INTO dkim_keys (id, domain_id, selector, algorithm, public_key, key_id, ephemeral_key, iv, tag, private_key)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
          [id, input.domainId, selector, input.pair.algorithm, input.pair.publicKey, box.keyId, box.ephemeralKey, box.iv, box.tag, box.ciphertext],
        );
      } catch (err) {
        if ((err as { code?: string }).code === '23505') throw new MoatError('CONFLICT', `the domain already has a DKIM key with selector ${selector}; selectors are never reused`);
        throw err;
      }
      const retired = input.activate ? await this.activateLocked(client, input.domainId, id) : null;
      const key = await this.read(client, id);
      return { key: key!, retired };
    });
  }

  async get(id: string): Promise<DkimKey | null> {
    return this.read(this.pool, id);
  }

  /** The domain's keys, newest first (retired ones included). */
  async listForDomain(domainId: string): Promise<DkimKey[]> {
    const res = await this.pool.query<KeyRow>(`SELECT ${keyColumns} FROM dkim_keys k JOIN domains d ON d.id = k.domain_id WHERE k.domain_id = $1 ORDER BY k.created_at DESC, k.id`, [domainId]);
    return res.rows.map(toKey);
  }

  /**
   * Makes a key the one that signs for its domain; the key that signed until now is retired in
   * the same transaction, so the domain never has two (nor, during the switch, none).
   * Activating the active key changes nothing. CONFLICT for a retired key: its DNS record may be
   * gone already, so it never comes back; NOT_FOUND when the key does not exist.
   */
  async activate(id: string): Promise<{ key: DkimKey; retired: DkimKey | null }> {
    return inTransaction(this.pool, async (client) => {
      const current = await this.read(client, id);
      if (!current) throw new MoatError('NOT_FOUND', `DKIM key ${id} does not exist`);
      await this.lockDomain(client, current.domainId);
      const locked = await this.read(client, id);
      if (!locked) throw new MoatError('NOT_FOUND', `DKIM key ${id} does not exist`);
      if (locked.state === 'retired') throw new MoatError('CONFLICT', `DKIM key ${id} (selector ${locked.selector}) is retired; create a new key instead`);
      if (locked.state === 'active') return { key: locked, retired: null };
      const retired = await this.activateLocked(client, locked.domainId, id);
      return { key: (await this.read(client, id))!, retired };
    });
  }

  /** Withdraws a key: it never signs again. Retiring a retired key changes nothing. NOT_FOUND when it does not exist. */
  async retire(id: string): Promise<DkimKey> {
    await this.pool.query("UPDATE dkim_keys SET state = 'retired', retired_at = now() WHERE id = $1 AND state <> 'retired'", [id]);
    const key = await this.get(id);
    if (!key) throw new MoatError('NOT_FOUND', `DKIM key ${id} does not exist`);
    return key;
  }

  /** Serialises key changes of one domain (two activations at once would otherwise both retire the old key). */
  private async lockDomain(client: Queryable, domainId: string): Promise<boolean> {
    const res = await client.query('SELECT 1 FROM domains WHERE id = $1 FOR UPDATE', [domainId]);
    return (res.rowCount ?? 0) > 0;
  }

  /** Within a transaction holding the domain's lock: retires the active key, activates `id`. */
  private async activateLocked(client: Queryable, domainId: string, id: string): Promise<DkimKey | null> {
    const retired = await client.query<{ id: string }>(
      "UPDATE dkim_keys SET state = 'retired', retired_at = now() WHERE domain_id = $1 AND state = 'active' AND id <> $2 RETURNING id",
      [domainId, id],
    );
    await client.query("UPDATE dkim_keys SET state = 'active', activated_at = now() WHERE id = $1", [id]);
    const retiredId = retired.rows[0]?.id;
    return retiredId ? this.read(client, retiredId) : null;
  }

  private async read(client: Queryable, id: string): Promise<DkimKey | null> {
    const res = await client.query<KeyRow>(`SELECT ${keyColumns} FROM dkim_keys k JOIN domains d ON d.id = k.domain_id WHERE k.id = $1`, [id]);
    return res.rows[0] ? toKey(res.rows[0]) : null;
  }
}

/** The filter's side: publishes the key DKIM keys are sealed to, and opens active keys to sign. */
export class DkimSigningKeys {
  constructor(
    private readonly pool: Pool,
    private readonly keyring: Keyring,
  ) {}

  /**
   * Publishes the sealing key of the current master key, so the gateway can seal new keys to it.
   * Idempotent: every filter start does it; the newest publication is the one the gateway uses.
   */
  async publishSealingKey(): Promise<SealingKey> {
    const key = sealingKeyOf(this.keyring);
    await this.pool.query(
      `INSERT INTO dkim_sealing_keys (key_id, public_key) VALUES ($1, $2)
       ON CONFLICT (key_id) DO UPDATE SET public_key = EXCLUDED.public_key, published_at = now()`,
      [key.keyId, key.publicKey],
    );
    return key;
  }

  /**
   * The active key of a protected domain, opened, for signing; null when the domain is not
   * protected or has no active key. DECRYPT_FAILED (permanent) when the master key it was sealed
   * to is not configured here.
   */
  async activeSigningKey(domainName: string): Promise<DkimSigningKey | null> {
    const res = await this.pool.query<{ id: string; domain_id: string; tenant_id: string; domain: string; selector: string; algorithm: DkimAlgorithm; key_id: string; ephemeral_key: Buffer; iv: Buffer; tag: Buffer; private_key: Buffer }>(
      `SELECT k.id, k.domain_id, d.tenant_id, d.name AS domain, k.selector, k.algorithm, k.key_id, k.ephemeral_key, k.iv, k.tag, k.private_key
         FROM dkim_keys k JOIN domains d ON d.id = k.domain_id
        WHERE d.name = $1 AND k.state = 'active'`,
      [domainName],
    );
    const r = res.rows[0];
    if (!r) return null;
    let pem: Buffer;
    try {
      pem = openBox(this.keyring, { keyId: r.key_id, ephemeralKey: r.ephemeral_key, iv: r.iv, tag: r.tag, ciphertext: r.private_key }, sealingContext(r.id));
    } catch (err) {
      const why = err instanceof MoatError ? err.message : String(err);
      throw new MoatError('DECRYPT_FAILED', `DKIM key ${r.id} of ${r.domain} cannot be opened: ${why}`, { permanent: true, cause: err });
    }
    return { keyId: r.id, tenantId: r.tenant_id, domainId: r.domain_id, domain: r.domain, selector: r.selector, algorithm: r.algorithm, privateKeyPem: pem.toString('utf8') };
  }
}
