import type { Pool } from '@moat/runtime';

// =============================================================================================
// Parked events: every dead-lettered broker message, persisted so an operator can see why it was
// parked and replay it (DESIGN.md: a poison message never blocks a queue, and never vanishes).
// =============================================================================================

export interface NewParkedEvent {
  /** The queue the message was dead-lettered from (unqualified: `tracker`, `sender.a`). */
  sourceQueue: string | null;
  routingKey: string;
  /** Why the broker dead-lettered it (`rejected`, `delivery_limit`, `expired`, …). */
  reason: string | null;
  eventId: string | null;
  eventType: string | null;
  messageId: string | null;
  /** AMQP headers, JSON-safe. */
  headers: Record<string, unknown>;
  body: Buffer;
}

export interface ParkedEventSummary {
  id: string;
  parkedAt: string;
  sourceQueue: string | null;
  routingKey: string;
  reason: string | null;
  eventId: string | null;
  eventType: string | null;
  messageId: string | null;
  size: number;
  replayedAt: string | null;
}

export interface ParkedEvent extends ParkedEventSummary {
  headers: Record<string, unknown>;
  body: Buffer;
}

interface ParkedRow {
  id: string;
  parked_at: Date;
  source_queue: string | null;
  routing_key: string;
  reason: string | null;
  event_id: string | null;
  event_type: string | null;
  message_id: string | null;
  size: number;
  replayed_at: Date | null;
  headers?: Record<string, unknown>;
  body?: Buffer;
}

function toSummary(r: ParkedRow): ParkedEventSummary {
  return {
    id: String(r.id),
    parkedAt: r.parked_at.toISOString(),
    sourceQueue: r.source_queue,
    routingKey: r.routing_key,
    reason: r.reason,
    eventId: r.event_id,
    eventType: r.event_type,
    messageId: r.message_id,
    size: r.size,
    replayedAt: r.replayed_at ? r.replayed_at.toISOString() : null,
  };
}

const summaryColumns = 'id, parked_at, source_queue, routing_key, reason, event_id, event_type, message_id, octet_length(body) AS size, replayed_at';
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class ParkedRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Persists a parked message. Idempotent: the parking consumer acks only after this commits, so
   * a redelivered copy (same routing key, headers — x-death included — and body) of a row not
   * yet replayed is recognised and not stored twice. Returns the row's id.
   */
  async insert(p: NewParkedEvent): Promise<{ id: string; inserted: boolean }> {
    const messageId = p.messageId && uuidPattern.test(p.messageId) ? p.messageId : null;
    const headers = JSON.stringify(p.headers);
    const res = await this.pool.query<{ id: string }>(
      `INSERT INTO parked_events (source_queue, routing_key, reason, event_id, event_type, message_id, headers, body)
       SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::uuid, $7::jsonb, $8::bytea
        WHERE NOT EXISTS (
          SELECT 1 FROM parked_events p
           WHERE p.replayed_at IS NULL AND p.message_id IS NOT DISTINCT FROM $6::uuid AND p.routing_key = $2
             AND p.headers = $7::jsonb AND p.body = $8)
       RETURNING id`,
      [p.sourceQueue, p.routingKey, p.reason, p.eventId, p.eventType, messageId, headers, p.body],
    );
    const row = res.rows[0];
    if (row) return { id: String(row.id), inserted: true };
    const existing = await this.pool.query<{ id: string }>(
      `SELECT id FROM parked_events
        WHERE replayed_at IS NULL AND message_id IS NOT DISTINCT FROM $1::uuid AND routing_key = $2 AND headers = $3::jsonb AND body = $4
        ORDER BY id LIMIT 1`,
      [messageId, p.routingKey, headers, p.body],
    );
    return { id: String(existing.rows[0]?.id ?? ''), inserted: false };
  }

  /** Newest first; `queue` filters by source queue, `before` continues after an id. */
  async list(q: { queue?: string; limit: number; before?: string; includeReplayed?: boolean }): Promise<{ items: ParkedEventSummary[]; next: string | null }> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.queue !== undefined) {
      params.push(q.queue);
      where.push(`source_queue = $${params.length}`);
    }
    if (q.before !== undefined) {
      params.push(q.before);
      where.push(`id < $${params.length}::bigint`);
    }
    if (q.includeReplayed === false) where.push('replayed_at IS NULL');
    const limit = Math.max(1, Math.min(q.limit, 1000));
    params.push(limit + 1);
    const res = await this.pool.query<ParkedRow>(
      `SELECT ${summaryColumns} FROM parked_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${params.length}`,
      params,
    );
    const rows = res.rows.slice(0, limit);
    const last = rows[rows.length - 1];
    return { items: rows.map(toSummary), next: res.rows.length > limit && last ? String(last.id) : null };
  }

  async get(id: string): Promise<ParkedEvent | null> {
    if (!/^\d{1,18}$/.test(id)) return null;
    const res = await this.pool.query<ParkedRow>(`SELECT ${summaryColumns}, headers, body FROM parked_events WHERE id = $1`, [id]);
    const r = res.rows[0];
    return r ? { ...toSummary(r), headers: r.headers ?? {}, body: r.body ?? Buffer.alloc(0) } : null;
  }

  /**
   * Claims a parked event for replay: sets replayed_at unless already set. Returns false when
   * another replay claimed it first, so two concurrent replays never publish twice.
   */
  async markReplayed(id: string, at: Date = new Date()): Promise<boolean> {
    const res = await this.pool.query('UPDATE parked_events SET replayed_at = $2 WHERE id = $1 AND replayed_at IS NULL', [id, at]);
    return (res.rowCount ?? 0) > 0;
  }

  /** Undoes a claim whose publish failed, so the event can be replayed again. */
  async unmarkReplayed(id: string, at: Date): Promise<void> {
    await this.pool.query('UPDATE parked_events SET replayed_at = NULL WHERE id = $1 AND replayed_at = $2', [id, at]);
  }
}
