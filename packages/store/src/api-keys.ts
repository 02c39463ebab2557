import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Pool } from '@moat/runtime';

export type Role = 'operator' | 'partner' | 'tenant';

export interface Principal {
  keyId: string;
  role: Role;
  partnerId: string | null;
  tenantId: string | null;
  name: string;
  scopes: string[];
}

export function hashKey(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

/** A new bearer token: `moat_` + 32 random bytes, base64url. */
export function generateKey(): string {
  return `moat_${randomBytes(32).toString('base64url')}`;
}

export class ApiKeyRepository {
  constructor(private readonly pool: Pool) {}

  /** Registers the operator token from MOAT_BOOTSTRAP_TOKEN (idempotent: only its hash is kept). */
  async ensureBootstrapToken(token: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO api_keys (id, role, name, scopes, key_hash) VALUES ($1, 'operator', 'bootstrap', '{*}', $2) ON CONFLICT (key_hash) DO NOTHING`,
      [randomUUID(), hashKey(token)],
    );
  }

  async create(input: { role: Role; name: string; scopes: string[]; tenantId?: string | null; partnerId?: string | null }): Promise<{ id: string; key: string }> {
    const key = generateKey();
    const id = randomUUID();
    await this.pool.query('INSERT INTO api_keys (id, role, partner_id, tenant_id, name, scopes, key_hash) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      id,
      input.role,
      input.partnerId ?? null,
      input.tenantId ?? null,
      input.name,
      input.scopes,
      hashKey(key),
    ]);
    return { id, key };
  }

  async authenticate(token: string): Promise<Principal | null> {
    const res = await this.pool.query('SELECT id, role, partner_id, tenant_id, name, scopes FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL', [hashKey(token)]);
    const r = res.rows[0];
    return r ? { keyId: r.id, role: r.role, partnerId: r.partner_id, tenantId: r.tenant_id, name: r.name, scopes: r.scopes } : null;
  }
}

export class AuditLog {
  constructor(private readonly pool: Pool) {}

  async record(entry: { actor: string; action: string; target?: string; detail?: Record<string, unknown> }): Promise<void> {
    await this.pool.query('INSERT INTO audit_log (actor, action, target, detail) VALUES ($1, $2, $3, $4)', [entry.actor, entry.action, entry.target ?? null, entry.detail ?? {}]);
  }
}
