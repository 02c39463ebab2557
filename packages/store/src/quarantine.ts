import type { Direction, MessageFilteredPayload, SealedPreview } from '@moat/contracts';
import { inTransaction, type Pool, type PoolClient } from '@moat/runtime';
import { recordSpamFeedback, type SpamFeedbackInput } from './spam-learning.js';

// =============================================================================================
// The quarantine: one row per quarantined message (the archive writes it, the gateway reads and
// acts on it). The body stays in the message store; see migration 1732700019000.
// =============================================================================================

/** Why a message is in quarantine; decides who may release it. */
export const quarantineCategories = ['virus', 'spoofing', 'spam', 'policy'] as const;
export type QuarantineCategory = (typeof quarantineCategories)[number];

/**
 * Mail quarantined as a virus or as spoofing is released only by a tenant admin (an API key with
 * `quarantine:release-dangerous`), never by a mailbox user or from a digest (issue 5).
 */
export const dangerousCategories: readonly QuarantineCategory[] = ['virus', 'spoofing'];

export function isDangerous(category: QuarantineCategory): boolean {
  return dangerousCategories.includes(category);
}

export const quarantineStates = ['quarantined', 'released', 'deleted', 'expired'] as const;
export type QuarantineState = (typeof quarantineStates)[number];

/** The filtered payload kept for a release: everything but the preview (kept on its own). */
export type QuarantinedPayload = Omit<MessageFilteredPayload, 'preview'>;

export interface QuarantineInput {
  messageId: string;
  tenantId: string;
  storeReceivedAt: string;
  receivedAt: string;
  direction: Direction;
  mailFrom: string;
  rcpts: string[];
  fromHeader: string | null;
  toHeader: string | null;
  subject: string | null;
  size: number;
  category: QuarantineCategory;
  reasons: string[];
  score: number;
  /** Days until the retention sweep expires it (MOAT_QUARANTINE_RETENTION_DAYS). */
  retentionDays: number;
  payload: QuarantinedPayload;
  preview: SealedPreview | null;
}

/** A quarantined message as listed: what was recorded (without payload and preview) and its state. */
export interface QuarantineEntry extends Omit<QuarantineInput, 'retentionDays' | 'payload' | 'preview'> {
  quarantinedAt: string;
  expiresAt: string;
  state: QuarantineState;
  stateChangedAt: string | null;
  stateChangedBy: string | null;
  hasPreview: boolean;
}

/** An entry with what only one-message reads need: the payload to release and the sealed preview. */
export interface QuarantineRecord extends QuarantineEntry {
  payload: QuarantinedPayload | null;
  preview: SealedPreview | null;
}

export interface QuarantineCursor {
  quarantinedAt: string;
  messageId: string;
}

export interface QuarantineSearch {
  /** Only messages with this recipient (a mailbox's quarantine), case-insensitive. */
  rcpt?: string;
  category?: QuarantineCategory;
  /** Default: `quarantined` (what is still waiting for a decision). */
  state?: QuarantineState;
  /** Every word must occur in the subject, From/To, sender, a recipient or a reason (case-insensitive). */
  q?: string;
  /** Quarantined at or after. */
  since?: string;
  limit: number;
  before?: QuarantineCursor;
}

export const maxQuarantineSearchLimit = 500;

/**
 * The outcome of a release or delete: `changed` when this call moved the entry, `unchanged` when
 * it was already in the wanted state (a second click: harmless, a release is then re-published
 * with the same event id), `refused` when its state forbids it (released mail cannot be deleted,
 * deleted or expired mail cannot be released).
 */
export type QuarantineTransition = { outcome: 'changed' | 'unchanged'; entry: QuarantineRecord } | { outcome: 'refused'; entry: QuarantineRecord };

interface QuarantineRow {
  message_id: string;
  tenant_id: string;
  store_received_at: Date;
  received_at: Date;
  direction: Direction;
  mail_from: string;
  rcpts: string[];
  from_header: string | null;
  to_header: string | null;
  subject: string | null;
  size: number;
  category: QuarantineCategory;
  reasons: string[];
  score: number;
  quarantined_at: Date;
  expires_at: Date;
  state: QuarantineState;
  state_changed_at: Date | null;
  state_changed_by: string | null;
  payload?: QuarantinedPayload | null;
  preview?: SealedPreview | null;
  has_preview: boolean;
}

const listColumns = `message_id, tenant_id, store_received_at, received_at, direction, mail_from, rcpts, from_header, to_header, subject, size,
  category, reasons, score, quarantined_at, expires_at, state, state_changed_at, state_changed_by, preview IS NOT NULL AS has_preview`;
const fullColumns = `${listColumns}, payload, preview`;

function toEntry(r: QuarantineRow): QuarantineEntry {
  return {
    messageId: r.message_id,
    tenantId: r.tenant_id,
    storeReceivedAt: r.store_received_at.toISOString(),
    receivedAt: r.received_at.toISOString(),
    direction: r.direction,
    mailFrom: r.mail_from,
    rcpts: r.rcpts,
    fromHeader: r.from_header,
    toHeader: r.to_header,
    subject: r.subject,
    size: r.size,
    category: r.category,
    reasons: r.reasons,
    score: r.score,
    quarantinedAt: r.quarantined_at.toISOString(),
    expiresAt: r.expires_at.toISOString(),
    state: r.state,
    stateChangedAt: r.state_changed_at ? r.state_changed_at.toISOString() : null,
    stateChangedBy: r.state_changed_by,
    hasPreview: r.has_preview,
  };
}

function toRecord(r: QuarantineRow): QuarantineRecord {
  return { ...toEntry(r), payload: r.payload ?? null, preview: r.preview ?? null };
}

/** `%`, `_` and `\` are LIKE wildcards/escape: a search word means itself, never a pattern. */
function likePattern(word: string): string {
  return `%${word.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * Deletes a message body from the message store unless a delivery row refers to the message (a
 * released message is being or was delivered: its retries and DSNs read the body). Takes the
 * router's per-message lock (migration 1732700003000) so that no routing of the message can slip
 * in between the check and the delete.
 */
async function deleteBodyUnlessDelivering(client: PoolClient, messageId: string, storeReceivedAt: string | Date): Promise<boolean> {
  await client.query(`SELECT pg_advisory_xact_lock(hashtext('deliveries:' || $1::uuid::text))`, [messageId]);
  const res = await client.query(
    `DELETE FROM messages WHERE received_at = $2 AND id = $1
       AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = $1)`,
    [messageId, storeReceivedAt],
  );
  return (res.rowCount ?? 0) > 0;
}

export class QuarantineRepository {
  constructor(private readonly pool: Pool) {}

  /** Records a quarantined message; true when new, false when it was already there (a redelivery). */
  async record(q: QuarantineInput): Promise<boolean> {
    const res = await this.pool.query(
      `INSERT INTO quarantine (message_id, tenant_id, store_received_at, received_at, direction, mail_from, rcpts, from_header, to_header,
                               subject, size, category, reasons, score, expires_at, payload, preview)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now() + make_interval(days => $15::int), $16, $17)
       ON CONFLICT (message_id) DO NOTHING`,
      [
        q.messageId,
        q.tenantId,
        q.storeReceivedAt,
        q.receivedAt,
        q.direction,
        q.mailFrom,
        q.rcpts,
        q.fromHeader,
        q.toHeader,
        q.subject,
        q.size,
        q.category,
        q.reasons,
        q.score,
        q.retentionDays,
        JSON.stringify(q.payload),
        q.preview ? JSON.stringify(q.preview) : null,
      ],
    );
    return res.rowCount === 1;
  }

  /** One quarantined message with its payload and sealed preview; null when unknown. */
  async get(messageId: string): Promise<QuarantineRecord | null> {
    const res = await this.pool.query<QuarantineRow>(`SELECT ${fullColumns} FROM quarantine WHERE message_id = $1`, [messageId]);
    return res.rows[0] ? toRecord(res.rows[0]) : null;
  }

  /** A tenant's quarantine (or one mailbox's, with `rcpt`), newest first. */
  async search(tenantId: string, opts: QuarantineSearch): Promise<QuarantineEntry[]> {
    const params: unknown[] = [tenantId];
    const param = (v: unknown) => {
      params.push(v);
      return `$${params.length}`;
    };
    const where = ['tenant_id = $1', `state = ${param(opts.state ?? 'quarantined')}`];
    if (opts.category !== undefined) where.push(`category = ${param(opts.category)}`);
    if (opts.rcpt !== undefined) where.push(`EXISTS (SELECT 1 FROM unnest(rcpts) r WHERE lower(r) = lower(${param(opts.rcpt)}))`);
    if (opts.since !== undefined) where.push(`quarantined_at >= ${param(opts.since)}::timestamptz`);
    for (const word of (opts.q ?? '').split(/\s+/).filter((w) => w.length > 0)) {
      const p = param(likePattern(word));
      where.push(
        `(coalesce(subject, '') ILIKE ${p} OR coalesce(from_header, '') ILIKE ${p} OR coalesce(to_header, '') ILIKE ${p}` +
          ` OR mail_from ILIKE ${p} OR array_to_string(rcpts, ' ') ILIKE ${p} OR array_to_string(reasons, ' ') ILIKE ${p})`,
      );
    }
    if (opts.before) where.push(`(quarantined_at, message_id) < (${param(opts.before.quarantinedAt)}::timestamptz, ${param(opts.before.messageId)}::uuid)`);
    const limit = param(Math.max(1, Math.min(opts.limit, maxQuarantineSearchLimit + 1)));
    const res = await this.pool.query<QuarantineRow>(
      `SELECT ${listColumns} FROM quarantine WHERE ${where.join(' AND ')} ORDER BY quarantined_at DESC, message_id DESC LIMIT ${limit}`,
      params,
    );
    return res.rows.map(toEntry);
  }

  /**
   * Marks a quarantined message released, once: the conditional update serialises concurrent
   * releases (double click, two gateway replicas) and a release racing a delete; exactly one
   * wins. The caller publishes the release afterwards; a crash in between leaves it `released`
   * but unpublished, and the next release call (outcome `unchanged`) publishes it then.
   */
  async release(messageId: string, actor: string): Promise<QuarantineTransition | null> {
    return this.transition(messageId, 'released', actor, async () => {});
  }

  /**
   * Deletes a quarantined message: it never goes out. Its payload and preview are dropped and its
   * body deleted from the message store (unless a delivery refers to it, which a message that was
   * never released cannot have). The archive_entries row (metadata) stays.
   */
  async delete(messageId: string, actor: string): Promise<QuarantineTransition | null> {
    return this.transition(messageId, 'deleted', actor, async (client, row) => {
      await client.query('UPDATE quarantine SET payload = NULL, preview = NULL WHERE message_id = $1', [messageId]);
      await deleteBodyUnlessDelivering(client, messageId, row.store_received_at);
    });
  }

  private async transition(
    messageId: string,
    to: 'released' | 'deleted',
    actor: string,
    after: (client: PoolClient, row: QuarantineRow) => Promise<void>,
  ): Promise<QuarantineTransition | null> {
    return inTransaction(this.pool, async (client) => {
      // FOR UPDATE: a concurrent transition waits here and then sees the state this one left.
      const res = await client.query<QuarantineRow>(`SELECT ${fullColumns} FROM quarantine WHERE message_id = $1 FOR UPDATE`, [messageId]);
      const row = res.rows[0];
      if (!row) return null;
      if (row.state === to) return { outcome: 'unchanged', entry: toRecord(row) };
      if (row.state !== 'quarantined') return { outcome: 'refused', entry: toRecord(row) };
      const updated = await client.query<QuarantineRow>(
        `UPDATE quarantine SET state = $2, state_changed_at = now(), state_changed_by = $3 WHERE message_id = $1 RETURNING ${fullColumns}`,
        [messageId, to, actor],
      );
      await after(client, row);
      const entry = toRecord(updated.rows[0]!);
      return { outcome: 'changed', entry: to === 'deleted' ? { ...entry, payload: null, preview: null, hasPreview: false } : entry };
    });
  }

  /**
   * Retention: quarantined messages whose time ran out become `expired` (the row stays, so the
   * API can say what happened to them), lose their payload and preview, and their bodies are
   * deleted from the message store (never one a delivery still needs). At most `limit` per call;
   * SKIP LOCKED lets several archive replicas sweep at once. Returns how many expired.
   */
  async expireDue(now: Date, limit = 500): Promise<number> {
    return inTransaction(this.pool, async (client) => {
      const res = await client.query<{ message_id: string; store_received_at: Date }>(
        `UPDATE quarantine q SET state = 'expired', state_changed_at = now(), state_changed_by = 'retention', payload = NULL, preview = NULL
          WHERE q.message_id IN (SELECT message_id FROM quarantine WHERE state = 'quarantined' AND expires_at <= $1
                                  ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
          RETURNING q.message_id, q.store_received_at`,
        [now, limit],
      );
      // Sorted: concurrent sweepers take the advisory locks in one order.
      for (const row of [...res.rows].sort((a, b) => (a.message_id < b.message_id ? -1 : 1))) {
        await deleteBodyUnlessDelivering(client, row.message_id, row.store_received_at);
      }
      return res.rowCount ?? 0;
    });
  }

  /**
   * Records "this is not spam" (ham) or "this is spam" for the tenant's classifier to learn from
   * (spam-learning.ts); true when recorded, false when it was the message's latest label already.
   */
  async recordFeedback(f: SpamFeedbackInput): Promise<boolean> {
    return (await recordSpamFeedback(this.pool, f)).recorded;
  }

  /** The feedback not yet used for training, oldest first (what a trainer reads). */
  async pendingFeedback(tenantId: string, limit = 100): Promise<Array<{ messageId: string; storeReceivedAt: string; label: 'ham' | 'spam'; actor: string; at: string }>> {
    const res = await this.pool.query<{ message_id: string; store_received_at: Date; label: 'ham' | 'spam'; actor: string; at: Date }>(
      'SELECT message_id, store_received_at, label, actor, at FROM spam_feedback WHERE tenant_id = $1 AND trained_at IS NULL ORDER BY at, id LIMIT $2',
      [tenantId, limit],
    );
    return res.rows.map((r) => ({ messageId: r.message_id, storeReceivedAt: r.store_received_at.toISOString(), label: r.label, actor: r.actor, at: r.at.toISOString() }));
  }
}
