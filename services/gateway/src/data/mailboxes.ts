import { randomUUID } from 'node:crypto';
import { MoatError, type Pool } from '@moat/runtime';

export interface Mailbox {
  id: string;
  tenantId: string;
  address: string;
  liveArchive: boolean;
  createdAt: string;
}

interface MailboxRow {
  id: string;
  tenant_id: string;
  address: string;
  live_archive: boolean;
  created_at: Date;
}

function toMailbox(r: MailboxRow): Mailbox {
  return { id: r.id, tenantId: r.tenant_id, address: r.address, liveArchive: r.live_archive, createdAt: r.created_at.toISOString() };
}

/** Mailboxes of a tenant (the schema stores addresses lower-case). */
export class MailboxRepository {
  constructor(private readonly pool: Pool) {}

  /** CONFLICT when the address already exists (in any tenant). */
  async create(tenantId: string, input: { address: string; liveArchive: boolean }): Promise<Mailbox> {
    try {
      const res = await this.pool.query<MailboxRow>('INSERT INTO mailboxes (id, tenant_id, address, live_archive) VALUES ($1, $2, $3, $4) RETURNING *', [
        randomUUID(),
        tenantId,
        input.address.toLowerCase(),
        input.liveArchive,
      ]);
      return toMailbox(res.rows[0]!);
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new MoatError('CONFLICT', `mailbox ${input.address.toLowerCase()} already exists`);
      throw err;
    }
  }

  async list(tenantId: string): Promise<Mailbox[]> {
    const res = await this.pool.query<MailboxRow>('SELECT * FROM mailboxes WHERE tenant_id = $1 ORDER BY address', [tenantId]);
    return res.rows.map(toMailbox);
  }

  async get(id: string): Promise<Mailbox | null> {
    const res = await this.pool.query<MailboxRow>('SELECT * FROM mailboxes WHERE id = $1', [id]);
    return res.rows[0] ? toMailbox(res.rows[0]) : null;
  }
}
