import { generateKeyPair, randomBytes, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { inTransaction, MoatError, type Pool } from '@moat/runtime';
import { open, seal, type Keyring } from './crypto.js';

// =============================================================================================
// DKIM keys of protected domains (RFC 6376). Private keys are sealed at rest with the message
// store's keyring; they are opened only by the filter, to sign, and never leave through the API.
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

const generate = promisify(generateKeyPair);

/** A fresh key pair; asynchronous, because an RSA key takes tens of milliseconds of CPU. */
export async function generateDkimKeyPair(algorithm: DkimAlgorithm): Promise<DkimKeyPair> {
  const encoding = { publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } } as const;
  if (algorithm === 'rsa-sha256') {
    const { publicKey, privateKey } = await generate('rsa', { modulusLength: dkimRsaBits, ...encoding });
    return { algorithm, publicKey: publicKey.toString('base64'), privateKeyPem: privateKey };
  }
  const { publicKey, privateKey } = await generate('ed25519', encoding);
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

export class DkimKeyRepository {
  constructor(
    private readonly pool: Pool,
    private readonly keyring: Keyring,
  ) {}

  /**
   * Stores a key for a domain, `pending`, or `active` at once (retiring the active one).
   * NOT_FOUND when the domain does not exist; CONFLICT when the domain already has the selector.
   */
  async create(input: { domainId: string; selector: string; pair: DkimKeyPair; activate: boolean }): Promise<{ key: DkimKey; retired: DkimKey | null }> {
    const selector = input.selector.toLowerCase();
    const id = randomUUID();
    const sealed = seal(this.keyring, Buffer.from(input.pair.privateKeyPem, 'utf8'), sealingContext(id));
    return inTransaction(this.pool, async (client) => {
      if (!(await this.lockDomain(client, input.domainId))) throw new MoatError('NOT_FOUND', `domain ${input.domainId} does not exist`);
      try {
        await client.query(
          `INSERT INTO dkim_keys (id, domain_id, selector, algorithm, public_key, key_id, wrapped_key, iv, tag, private_key)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
          [id, input.domainId, selector, input.pair.algorithm, input.pair.publicKey, sealed.keyId, sealed.wrappedKey, sealed.iv, sealed.tag, sealed.ciphertext],
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

  /**
   * The active key of a protected domain, opened, for signing; null when the domain is not
   * protected or has no active key. DECRYPT_FAILED (permanent) when the master key that sealed it
   * is not configured.
   */
  async activeSigningKey(domainName: string): Promise<DkimSigningKey | null> {
    const res = await this.pool.query<{ id: string; domain_id: string; tenant_id: string; domain: string; selector: string; algorithm: DkimAlgorithm; key_id: string; wrapped_key: Buffer; iv: Buffer; tag: Buffer; private_key: Buffer }>(
      `SELECT k.id, k.domain_id, d.tenant_id, d.name AS domain, k.selector, k.algorithm, k.key_id, k.wrapped_key, k.iv, k.tag, k.private_key
         FROM dkim_keys k JOIN domains d ON d.id = k.domain_id
        WHERE d.name = $1 AND k.state = 'active'`,
      [domainName],
    );
    const r = res.rows[0];
    if (!r) return null;
    let pem: Buffer;
    try {
      pem = open(this.keyring, { keyId: r.key_id, wrappedKey: r.wrapped_key, iv: r.iv, tag: r.tag, ciphertext: r.private_key }, sealingContext(r.id));
    } catch (err) {
      const why = err instanceof MoatError ? err.message : String(err);
      throw new MoatError('DECRYPT_FAILED', `DKIM key ${r.id} of ${r.domain} cannot be opened: ${why}`, { permanent: true, cause: err });
    }
    return { keyId: r.id, tenantId: r.tenant_id, domainId: r.domain_id, domain: r.domain, selector: r.selector, algorithm: r.algorithm, privateKeyPem: pem.toString('utf8') };
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
