import type { Direction, Verdict } from '@moat/contracts';
import type { Pool } from '@moat/runtime';

/** What LiveArchive keeps about one message (the body stays in the message store). */
export interface ArchiveEntryInput {
  messageId: string;
  tenantId: string;
  /** ISO timestamp: when ingress accepted the message. */
  receivedAt: string;
  direction: Direction;
  mailFrom: string;
  rcpts: string[];
  fromHeader: string | null;
  toHeader: string | null;
  subject: string | null;
  dateHeader: string | null;
  messageIdHeader: string | null;
  size: number;
  verdict: Verdict;
}

export interface ArchiveEntry extends ArchiveEntryInput {
  /** ISO timestamp: when the archive recorded it. */
  archivedAt: string;
}

/**
 * Where a page of search results ended: pass the last entry's cursor as `before` to get the next
 * (older) page. Both fields are needed because several messages can share a timestamp.
 */
export interface ArchiveCursor {
  receivedAt: string;
  messageId: string;
}

export interface ArchiveSearch {
  /** Words to look for in the subject, From header, sender and recipients (case-insensitive). */
  q?: string;
  limit: number;
  before?: ArchiveCursor;
}

export const maxArchiveSearchLimit = 500;

export function archiveCursor(entry: Pick<ArchiveEntry, 'receivedAt' | 'messageId'>): ArchiveCursor {
  return { receivedAt: entry.receivedAt, messageId: entry.messageId };
}

interface ArchiveRow {
  message_id: string;
  tenant_id: string;
  received_at: Date;
  direction: Direction;
  mail_from: string;
  rcpts: string[];
  from_header: string | null;
  to_header: string | null;
  subject: string | null;
  date_header: string | null;
  message_id_header: string | null;
  size: number;
  verdict: Verdict;
  archived_at: Date;
}

function toEntry(r: ArchiveRow): ArchiveEntry {
  return {
    messageId: r.message_id,
    tenantId: r.tenant_id,
    receivedAt: r.received_at.toISOString(),
    direction: r.direction,
    mailFrom: r.mail_from,
    rcpts: r.rcpts,
    fromHeader: r.from_header,
    toHeader: r.to_header,
    subject: r.subject,
    dateHeader: r.date_header,
    messageIdHeader: r.message_id_header,
    size: r.size,
    verdict: r.verdict,
    archivedAt: r.archived_at.toISOString(),
  };
}

/** `%`, `_` and `\` are LIKE wildcards/escape: a search word means itself, never a pattern. */
function likePattern(word: string): string {
  return `%${word.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * The LiveArchive index (archive_entries). Recording is idempotent: the message id is the key, so
 * a redelivered message.filtered event finds its row already there and changes nothing.
 */
export class ArchiveRepository {
  constructor(private readonly pool: Pool) {}

  /** Records an entry; true when it was new, false when the message was already archived. */
  async record(entry: ArchiveEntryInput): Promise<boolean> {
    const res = await this.pool.query(
      `INSERT INTO archive_entries (message_id, tenant_id, received_at, direction, mail_from, rcpts, from_header, to_header,
                                    subject, date_header, message_id_header, size, verdict)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
       ON CONFLICT (message_id) DO NOTHING`,
      [
        entry.messageId,
        entry.tenantId,
        entry.receivedAt,
        entry.direction,
        entry.mailFrom,
        entry.rcpts,
        entry.fromHeader,
        entry.toHeader,
        entry.subject,
        entry.dateHeader,
        entry.messageIdHeader,
        entry.size,
        entry.verdict,
      ],
    );
    return res.rowCount === 1;
  }

  /**
   * Records several entries in one statement; one result per entry, in order: true when it was
   * new, false when the message was already archived (or appears earlier in the same batch, as a
   * redelivery can). Recipient lists travel as JSON text because Postgres arrays must be
   * rectangular, so a text[][] could not carry lists of different lengths through unnest.
   */
  async recordMany(entries: readonly ArchiveEntryInput[]): Promise<boolean[]> {
    if (entries.length === 0) return [];
    const res = await this.pool.query<{ message_id: string }>(
      `INSERT INTO archive_entries (message_id, tenant_id, received_at, direction, mail_from, rcpts, from_header, to_header,
                                    subject, date_header, message_id_header, size, verdict)
       SELECT e.message_id, e.tenant_id, e.received_at, e.direction, e.mail_from,
              ARRAY(SELECT jsonb_array_elements_text(e.rcpts::jsonb)), e.from_header, e.to_header,
              e.subject, e.date_header, e.message_id_header, e.size, e.verdict
         FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                     $9::text[], $10::text[], $11::text[], $12::integer[], $13::text[])
           AS e(message_id, tenant_id, received_at, direction, mail_from, rcpts, from_header, to_header,
                subject, date_header, message_id_header, size, verdict)
       ON CONFLICT (message_id) DO NOTHING
       RETURNING message_id`,
      [
        entries.map((e) => e.messageId),
        entries.map((e) => e.tenantId),
        entries.map((e) => e.receivedAt),
        entries.map((e) => e.direction),
        entries.map((e) => e.mailFrom),
        entries.map((e) => JSON.stringify(e.rcpts)),
        entries.map((e) => e.fromHeader),
        entries.map((e) => e.toHeader),
        entries.map((e) => e.subject),
        entries.map((e) => e.dateHeader),
        entries.map((e) => e.messageIdHeader),
        entries.map((e) => e.size),
        entries.map((e) => e.verdict),
      ],
    );
    // Postgres returns UUIDs lower-case; a message id inserted once is new for its first entry only.
    const inserted = new Set(res.rows.map((r) => r.message_id));
    return entries.map((e) => inserted.delete(e.messageId.toLowerCase()));
  }

  async get(tenantId: string, messageId: string): Promise<ArchiveEntry | null> {
    const res = await this.pool.query<ArchiveRow>('SELECT * FROM archive_entries WHERE tenant_id = $1 AND message_id = $2', [tenantId, messageId]);
    return res.rows[0] ? toEntry(res.rows[0]) : null;
  }

  /**
   * A tenant's archived messages, newest first. Every word of `q` must occur (case-insensitive)
   * in the subject, the From or To header, the envelope sender or a recipient. A plain ILIKE
   * scan over the tenant's rows for now; a full-text index replaces it when LiveArchive grows.
   */
  async search(tenantId: string, opts: ArchiveSearch): Promise<ArchiveEntry[]> {
    const params: unknown[] = [tenantId];
    const where = ['tenant_id = $1'];
    const words = (opts.q ?? '').split(/\s+/).filter((w) => w.length > 0);
    for (const word of words) {
      params.push(likePattern(word));
      const p = `$${params.length}`;
      where.push(
        `(coalesce(subject, '') ILIKE ${p} OR coalesce(from_header, '') ILIKE ${p} OR coalesce(to_header, '') ILIKE ${p}` +
          ` OR mail_from ILIKE ${p} OR array_to_string(rcpts, ' ') ILIKE ${p})`,
      );
    }
    if (opts.before) {
      params.push(opts.before.receivedAt, opts.before.messageId);
      where.push(`(received_at, message_id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
    }
    params.push(Math.max(1, Math.min(opts.limit, maxArchiveSearchLimit)));
    const res = await this.pool.query<ArchiveRow>(
      `SELECT * FROM archive_entries WHERE ${where.join(' AND ')} ORDER BY received_at DESC, message_id DESC LIMIT $${params.length}`,
      params,
    );
    return res.rows.map(toEntry);
  }
}
