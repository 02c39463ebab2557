import { randomBytes, randomUUID, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { MoatError, type Pool } from '@moat/runtime';

/**
 * SMTP AUTH credentials of a tenant (outbound relay on the submission ports). Moat generates the
 * password, shows it once and keeps only a scrypt hash of it (RFC 7914), so a database dump
 * gives no usable credential.
 */
export interface SmtpCredential {
  id: string;
  tenantId: string;
  username: string;
  description: string | null;
  createdAt: string;
  revokedAt: string | null;
}

/** Who an accepted AUTH is: the credential and its tenant. */
export interface AuthenticatedSmtpUser {
  credentialId: string;
  tenantId: string;
  username: string;
}

/**
 * scrypt's cost. N = 2^14, r = 8 (16 MiB, tens of milliseconds per check) is RFC 7914's
 * interactive-login setting. The passwords are 192 random bits, so the hash has no weak password
 * to protect; its cost only has to make a leaked hash useless, while every AUTH on a busy
 * submission port pays it (on libuv's thread pool, never the event loop). The parameters travel
 * in each hash, so they can be raised later without invalidating stored hashes.
 */
const cost = { N: 16_384, r: 8, p: 1 } as const;
const keyLength = 32;
const saltLength = 16;

function scrypt(password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCallback(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key))));
}

/** `scrypt$N$r$p$<salt base64>$<hash base64>`. */
export async function hashSmtpPassword(password: string): Promise<string> {
  const salt = randomBytes(saltLength);
  const hash = await scrypt(password, salt, keyLength, { ...cost, maxmem: 64 * 1024 * 1024 });
  return `scrypt$${cost.N}$${cost.r}$${cost.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

const hashFormat = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/;

/** Whether the password matches the stored hash; a hash that does not parse matches nothing. */
export async function verifySmtpPassword(password: string, stored: string): Promise<boolean> {
  const m = hashFormat.exec(stored);
  if (!m) return false;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const salt = Buffer.from(m[4]!, 'base64');
  const expected = Buffer.from(m[5]!, 'base64');
  if (expected.length === 0) return false;
  const actual = await scrypt(password, salt, expected.length, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 });
  return timingSafeEqual(actual, expected);
}

/**
 * A hash of a password nobody has: verifying against it when the username is unknown costs the
 * same as a real check, so the reply time does not tell which usernames exist.
 */
let decoyHash: Promise<string> | null = null;
function decoy(): Promise<string> {
  decoyHash ??= hashSmtpPassword(randomBytes(24).toString('base64url'));
  return decoyHash;
}

/** 24 random bytes, base64url: 32 characters an SMTP client stores as they are (no quoting issues). */
export function generateSmtpPassword(): string {
  return randomBytes(24).toString('base64url');
}

/** `smtp-` + 10 hex digits when the caller names none. */
export function generateSmtpUsername(): string {
  return `smtp-${randomBytes(5).toString('hex')}`;
}

/**
 * A username an SMTP client can send in AUTH PLAIN and LOGIN without escaping: 3–64 characters of
 * letters, digits and `.`, `_`, `-`, `+`, `@` (so `relay@acme.example` works), starting with a
 * letter or digit. Compared lower-case.
 */
export function isSmtpUsername(value: string): boolean {
  return /^[a-z0-9][a-z0-9._+@-]{2,63}$/i.test(value);
}

function toCredential(r: { id: string; tenant_id: string; username: string; description: string | null; created_at: Date; revoked_at: Date | null }): SmtpCredential {
  return { id: r.id, tenantId: r.tenant_id, username: r.username, description: r.description, createdAt: r.created_at.toISOString(), revokedAt: r.revoked_at ? r.revoked_at.toISOString() : null };
}

export class SmtpCredentialRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * A new credential with a generated password, returned once. CONFLICT when the username is
   * taken (also by a revoked credential: usernames are never reused); VALIDATION_FAILED for a
   * username that is not one; NOT_FOUND when the tenant does not exist.
   */
  async create(tenantId: string, input: { username?: string | undefined; description?: string | null | undefined } = {}): Promise<{ credential: SmtpCredential; password: string }> {
    const username = (input.username ?? generateSmtpUsername()).toLowerCase();
    if (!isSmtpUsername(username)) throw new MoatError('VALIDATION_FAILED', `username ${username} is not valid: 3–64 letters, digits, ".", "_", "-", "+" or "@", starting with a letter or digit`);
    const password = generateSmtpPassword();
    const hash = await hashSmtpPassword(password);
    try {
      const res = await this.pool.query('INSERT INTO smtp_credentials (id, tenant_id, username, password_hash, description) VALUES ($1, $2, $3, $4, $5) RETURNING *', [
        randomUUID(),
        tenantId,
        username,
        hash,
        input.description ?? null,
      ]);
      return { credential: toCredential(res.rows[0]), password };
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '23505') throw new MoatError('CONFLICT', `the SMTP username ${username} is already taken (usernames are never reused)`);
      if (code === '23503') throw new MoatError('NOT_FOUND', `tenant ${tenantId} does not exist`);
      throw err;
    }
  }

  /** The tenant's credentials, revoked ones included, oldest first. */
  async list(tenantId: string): Promise<SmtpCredential[]> {
    const res = await this.pool.query('SELECT * FROM smtp_credentials WHERE tenant_id = $1 ORDER BY created_at, id', [tenantId]);
    return res.rows.map(toCredential);
  }

  async get(id: string): Promise<SmtpCredential | null> {
    const res = await this.pool.query('SELECT * FROM smtp_credentials WHERE id = $1', [id]);
    return res.rows[0] ? toCredential(res.rows[0]) : null;
  }

  /** Revokes the credential (a revoked one keeps its first revocation time); null when there is none. */
  async revoke(id: string): Promise<SmtpCredential | null> {
    const res = await this.pool.query('UPDATE smtp_credentials SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING *', [id]);
    return res.rows[0] ? toCredential(res.rows[0]) : null;
  }

  /**
   * The active credential these give, or null. An unknown username is checked against a decoy
   * hash, so that a wrong username and a wrong password take the same time.
   */
  async authenticate(username: string, password: string): Promise<AuthenticatedSmtpUser | null> {
    const res = await this.pool.query('SELECT id, tenant_id, username, password_hash FROM smtp_credentials WHERE username = $1 AND revoked_at IS NULL', [username.toLowerCase()]);
    const row = res.rows[0] as { id: string; tenant_id: string; username: string; password_hash: string } | undefined;
    if (!row) {
      await verifySmtpPassword(password, await decoy());
      return null;
    }
    if (!(await verifySmtpPassword(password, row.password_hash))) return null;
    return { credentialId: row.id, tenantId: row.tenant_id, username: row.username };
  }
}
