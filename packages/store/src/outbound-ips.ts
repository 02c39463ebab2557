import { isIP } from 'node:net';
import { randomUUID } from 'node:crypto';
import { MoatError, type Pool } from '@moat/runtime';
import { CidrError, normalizeCidr } from './cidr.js';

/**
 * The addresses a tenant's own servers send from. A client connecting from one of them may relay
 * the tenant's outbound mail without SMTP AUTH (ingress), so a range names exactly one tenant:
 * ranges never overlap, across all tenants (an exclusion constraint in the schema).
 */
export interface OutboundIp {
  id: string;
  tenantId: string;
  /** Normalised CIDR (cidr.ts): `192.0.2.10/32`, `2001:db8:1::/48`. */
  cidr: string;
  description: string | null;
  createdAt: string;
}

/**
 * The one CIDR spelling of a range, accepting a bare address as the single-address range
 * (`192.0.2.10` → `192.0.2.10/32`): that is what a customer pastes for one server. Anything else
 * cidr.ts refuses (host bits set, a zone index…) is VALIDATION_FAILED with its explanation.
 */
export function outboundRange(value: string): string {
  const text = value.trim();
  const version = isIP(text);
  try {
    return normalizeCidr(version === 0 ? text : `${text}/${version === 4 ? 32 : 128}`);
  } catch (err) {
    if (err instanceof CidrError) throw new MoatError('VALIDATION_FAILED', err.message);
    throw err;
  }
}

/**
 * A client address as the database compares it: an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`,
 * what a dual-stack listener reports for an IPv4 client) is the IPv4 address; null for anything
 * that is not an address.
 */
export function clientAddress(value: string): string | null {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(value);
  const address = mapped ? mapped[1]! : value;
  return isIP(address) === 0 ? null : address;
}

function toOutboundIp(r: { id: string; tenant_id: string; cidr: string; description: string | null; created_at: Date }): OutboundIp {
  // Postgres spells a cidr its own way (`192.0.2.10/32`, `2001:db8:1::/48`); normalizeCidr gives ours.
  return { id: r.id, tenantId: r.tenant_id, cidr: normalizeCidr(r.cidr), description: r.description, createdAt: r.created_at.toISOString() };
}

export class OutboundIpRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Registers a range for the tenant. CONFLICT when it overlaps a registered range (the tenant's
   * own, named; another tenant's, not named); VALIDATION_FAILED for a range that does not parse;
   * NOT_FOUND for an unknown tenant.
   */
  async add(tenantId: string, input: { cidr: string; description?: string | null | undefined }): Promise<OutboundIp> {
    const cidr = outboundRange(input.cidr);
    try {
      const res = await this.pool.query('INSERT INTO outbound_ips (id, tenant_id, cidr, description) VALUES ($1, $2, $3::cidr, $4) RETURNING id, tenant_id, cidr::text AS cidr, description, created_at', [
        randomUUID(),
        tenantId,
        cidr,
        input.description ?? null,
      ]);
      return toOutboundIp(res.rows[0]);
    } catch (err) {
      const code = (err as { code?: string }).code;
      // 23P01: exclusion_violation (the ranges overlap).
      if (code === '23P01') throw await this.overlapConflict(tenantId, cidr);
      if (code === '23503') throw new MoatError('NOT_FOUND', `tenant ${tenantId} does not exist`);
      throw err;
    }
  }

  private async overlapConflict(tenantId: string, cidr: string): Promise<MoatError> {
    const res = await this.pool.query('SELECT tenant_id, cidr::text AS cidr FROM outbound_ips WHERE cidr && $1::cidr ORDER BY cidr LIMIT 1', [cidr]);
    const other = res.rows[0] as { tenant_id: string; cidr: string } | undefined;
    if (other && other.tenant_id === tenantId) return new MoatError('CONFLICT', `${cidr} overlaps ${normalizeCidr(other.cidr)}, which is already registered for this tenant`);
    // Another tenant's range is not named: a key must not learn what other tenants registered.
    return new MoatError('CONFLICT', `${cidr} overlaps a range registered by another organisation; a sending address can belong to one organisation only`);
  }

  async list(tenantId: string): Promise<OutboundIp[]> {
    const res = await this.pool.query('SELECT id, tenant_id, cidr::text AS cidr, description, created_at FROM outbound_ips WHERE tenant_id = $1 ORDER BY created_at, id', [tenantId]);
    return res.rows.map(toOutboundIp);
  }

  async get(id: string): Promise<OutboundIp | null> {
    const res = await this.pool.query('SELECT id, tenant_id, cidr::text AS cidr, description, created_at FROM outbound_ips WHERE id = $1', [id]);
    return res.rows[0] ? toOutboundIp(res.rows[0]) : null;
  }

  /** Removes the range; the removed entry, or null when there was none. */
  async delete(id: string): Promise<OutboundIp | null> {
    const res = await this.pool.query('DELETE FROM outbound_ips WHERE id = $1 RETURNING id, tenant_id, cidr::text AS cidr, description, created_at', [id]);
    return res.rows[0] ? toOutboundIp(res.rows[0]) : null;
  }

  /** The tenant whose registered range holds the client address, or null (also for a non-address). */
  async tenantForAddress(address: string): Promise<string | null> {
    const ip = clientAddress(address);
    if (ip === null) return null;
    const res = await this.pool.query('SELECT tenant_id FROM outbound_ips WHERE cidr >>= $1::inet LIMIT 1', [ip]);
    return res.rows[0] ? (res.rows[0].tenant_id as string) : null;
  }
}
