import { MoatError, type Pool } from '@moat/runtime';
import { CidrError, normalizeCidr } from './cidr.js';

/**
 * Sending pools: the source ranges Moat delivers from. Customers lock their port 25 to these
 * ranges, so they are published (the partner API) and must be exact: every range is stored in
 * its one normalised CIDR spelling.
 */
export const poolStates = ['active', 'warming', 'draining', 'disabled'] as const;
export type PoolState = (typeof poolStates)[number];

export interface SendingPool {
  name: string;
  cidrs: string[];
  state: PoolState;
  /** The name the pool's senders give in EHLO (RFC 5321 §4.1.1.1); null: the sender's default. */
  ehloName: string | null;
  createdAt: string;
}

function toPool(r: { name: string; cidrs: string[]; state: PoolState; ehlo_name: string | null; created_at: Date }): SendingPool {
  return { name: r.name, cidrs: r.cidrs, state: r.state, ehloName: r.ehlo_name, createdAt: r.created_at.toISOString() };
}

function normalizeAll(cidrs: readonly string[]): string[] {
  try {
    return cidrs.map(normalizeCidr);
  } catch (err) {
    if (err instanceof CidrError) throw new MoatError('VALIDATION_FAILED', `cidrs: ${err.message}`);
    throw err;
  }
}

export class PoolRepository {
  constructor(private readonly pool: Pool) {}

  /** CONFLICT when a pool of that name exists; VALIDATION_FAILED for a range that does not parse. */
  async create(input: { name: string; cidrs: readonly string[]; state?: PoolState; ehloName?: string | null }): Promise<SendingPool> {
    const cidrs = normalizeAll(input.cidrs);
    try {
      const res = await this.pool.query('INSERT INTO pools (name, cidrs, state, ehlo_name) VALUES ($1, $2, $3, $4) RETURNING *', [input.name, cidrs, input.state ?? 'active', input.ehloName ?? null]);
      return toPool(res.rows[0]);
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new MoatError('CONFLICT', `pool ${input.name} already exists`);
      throw err;
    }
  }

  async list(): Promise<SendingPool[]> {
    const res = await this.pool.query('SELECT * FROM pools ORDER BY name');
    return res.rows.map(toPool);
  }

  async get(name: string): Promise<SendingPool | null> {
    const res = await this.pool.query('SELECT * FROM pools WHERE name = $1', [name]);
    return res.rows[0] ? toPool(res.rows[0]) : null;
  }

  /** Changes the given fields (ehloName null clears it); null when no such pool. */
  async update(name: string, patch: { state?: PoolState; cidrs?: readonly string[]; ehloName?: string | null }): Promise<SendingPool | null> {
    const cidrs = patch.cidrs === undefined ? null : normalizeAll(patch.cidrs);
    const res = await this.pool.query(
      `UPDATE pools SET state = coalesce($2, state), cidrs = coalesce($3, cidrs), ehlo_name = CASE WHEN $4 THEN $5 ELSE ehlo_name END
        WHERE name = $1 RETURNING *`,
      [name, patch.state ?? null, cidrs, patch.ehloName !== undefined, patch.ehloName ?? null],
    );
    return res.rows[0] ? toPool(res.rows[0]) : null;
  }
}
