import { randomUUID } from 'node:crypto';
import type { Pool } from '@moat/runtime';

export interface Partner {
  id: string;
  name: string;
  createdAt: string;
}

/** Partners (MSPs): each runs some tenants. */
export class PartnerRepository {
  constructor(private readonly pool: Pool) {}

  async create(name: string): Promise<Partner> {
    const res = await this.pool.query<{ id: string; name: string; created_at: Date }>('INSERT INTO partners (id, name) VALUES ($1, $2) RETURNING *', [randomUUID(), name]);
    return toPartner(res.rows[0]!);
  }

  async get(id: string): Promise<Partner | null> {
    const res = await this.pool.query<{ id: string; name: string; created_at: Date }>('SELECT * FROM partners WHERE id = $1', [id]);
    return res.rows[0] ? toPartner(res.rows[0]) : null;
  }

  async list(): Promise<Partner[]> {
    const res = await this.pool.query<{ id: string; name: string; created_at: Date }>('SELECT * FROM partners ORDER BY created_at, id');
    return res.rows.map(toPartner);
  }

  /** The ids of the partner's tenants. */
  async tenantIds(partnerId: string): Promise<string[]> {
    const res = await this.pool.query<{ id: string }>('SELECT id FROM tenants WHERE partner_id = $1', [partnerId]);
    return res.rows.map((r) => r.id);
  }
}

function toPartner(r: { id: string; name: string; created_at: Date }): Partner {
  return { id: r.id, name: r.name, createdAt: r.created_at.toISOString() };
}
