import type { Direction } from '@moat/contracts';
import { inTransaction, type Pool, type PoolClient } from '@moat/runtime';
import type { QuarantineCategory, QuarantineState } from './quarantine.js';

// =============================================================================================
// Per-tenant spam learning (migration 1732700022000): the feedback log the gateway writes, the
// tenant token counts the filter reads, and the transaction in which the trainer moves one into
// the other. What to add or take away is decided by the filter (services/filter/src/spam/
// trainer.ts); this module only reads and writes.
// =============================================================================================

export type SpamLabel = 'spam' | 'ham';

export interface SpamFeedbackInput {
  tenantId: string;
  messageId: string;
  /** The message store's partition key: where the trainer finds the body. */
  storeReceivedAt: string;
  label: SpamLabel;
  /** Where the label was given: `quarantine` (not-spam), `api`. */
  source: string;
  actor: string;
}

/** A label request's outcome: `recorded` false when the message's latest label was already this one. */
export interface SpamFeedbackOutcome {
  recorded: boolean;
  previous: SpamLabel | null;
}

/**
 * Records a label unless it is the message's latest one already: a repeated click records
 * nothing, spam then ham records both (the trainer reverses the first). The per-message lock makes
 * two concurrent requests see each other's row.
 */
export async function recordSpamFeedback(pool: Pool, f: SpamFeedbackInput): Promise<SpamFeedbackOutcome> {
  return inTransaction(pool, async (client) => {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('spam-feedback:' || $1::uuid::text))`, [f.messageId]);
    const latest = await client.query<{ label: SpamLabel }>('SELECT label FROM spam_feedback WHERE message_id = $1 ORDER BY id DESC LIMIT 1', [f.messageId]);
    const previous = latest.rows[0]?.label ?? null;
    if (previous === f.label) return { recorded: false, previous };
    await client.query('INSERT INTO spam_feedback (tenant_id, message_id, store_received_at, label, source, actor) VALUES ($1, $2, $3, $4, $5, $6)', [
      f.tenantId,
      f.messageId,
      f.storeReceivedAt,
      f.label,
      f.source,
      f.actor,
    ]);
    return { recorded: true, previous };
  });
}

/** A message a tenant may label, found in its quarantine or its LiveArchive. */
export interface SpamFeedbackTarget {
  messageId: string;
  tenantId: string;
  storeReceivedAt: string;
  direction: Direction;
  /** Set when the message is (or was) in the quarantine. */
  quarantine: { category: QuarantineCategory; state: QuarantineState } | null;
  /** Whether the body is still in the message store (retention deletes it). */
  bodyStored: boolean;
  /** The label the tenant's model holds for it now (trained), or null. */
  learnedLabel: SpamLabel | null;
  /** Its latest label, trained or not, or null. */
  latestLabel: SpamLabel | null;
}

export interface SpamFeedbackEntry {
  id: string;
  messageId: string;
  label: SpamLabel;
  source: string;
  actor: string;
  at: string;
  trainedAt: string | null;
  outcome: 'learned' | 'relabelled' | 'unchanged' | 'untrainable' | null;
  detail: string | null;
}

export interface SpamLearningSummary {
  /** Messages the model holds as spam and as ham. */
  nSpam: number;
  nHam: number;
  /** Distinct tokens with counts. */
  tokens: number;
  /** Labels waiting for the trainer. */
  pending: number;
  untrainable: number;
  updatedAt: string | null;
}

/** A tenant's counts for some tokens (by hash), and its class totals. */
export interface TenantTokenCounts {
  nSpam: number;
  nHam: number;
  tokens: Map<string, { spam: number; ham: number }>;
}

/** A feedback row the trainer holds (locked) in its transaction, with what the model holds for the message. */
export interface PendingSpamFeedback {
  id: string;
  tenantId: string;
  messageId: string;
  storeReceivedAt: string;
  label: SpamLabel;
  /** The message's current contribution to the tenant's counts, or null when it has none. */
  learned: { label: SpamLabel; tokenHashes: string[] } | null;
}

export type SpamTrainOutcome = 'learned' | 'relabelled' | 'unchanged' | 'untrainable';

/** What one training batch changes, applied in one transaction with the stamps. */
export interface SpamTrainingPlan {
  /** Summed per (tenant, token); negative to reverse a relabelled message. */
  tokenDeltas: Array<{ tenantId: string; tokenHash: string; spam: number; ham: number }>;
  totalDeltas: Array<{ tenantId: string; spam: number; ham: number }>;
  /** The messages' contributions after the batch (upserted by message id). */
  learned: Array<{ messageId: string; tenantId: string; label: SpamLabel; tokenHashes: string[]; feedbackId: string }>;
  stamps: Array<{ id: string; outcome: SpamTrainOutcome; detail: string | null }>;
}

const byTenantThenHash = (a: { tenantId: string; tokenHash: string }, b: { tenantId: string; tokenHash: string }) =>
  a.tenantId < b.tenantId ? -1 : a.tenantId > b.tenantId ? 1 : BigInt(a.tokenHash) < BigInt(b.tokenHash) ? -1 : BigInt(a.tokenHash) > BigInt(b.tokenHash) ? 1 : 0;

export class SpamLearningRepository {
  constructor(private readonly pool: Pool) {}

  record(f: SpamFeedbackInput): Promise<SpamFeedbackOutcome> {
    return recordSpamFeedback(this.pool, f);
  }

  /**
   * The tenant's message with this id, from the quarantine or the LiveArchive; null when the
   * tenant has no such message (another tenant's answers null too). The archive's received_at is
   * the message store's partition key: ingress sets both from one clock reading.
   */
  async target(tenantId: string, messageId: string): Promise<SpamFeedbackTarget | null> {
    const res = await this.pool.query<{
      store_received_at: Date;
      direction: Direction;
      category: QuarantineCategory | null;
      state: QuarantineState | null;
      body_stored: boolean;
      learned_label: SpamLabel | null;
      latest_label: SpamLabel | null;
    }>(
      `WITH m AS (
         SELECT q.store_received_at, q.direction, q.category, q.state FROM quarantine q WHERE q.message_id = $2 AND q.tenant_id = $1
         UNION ALL
         SELECT a.received_at, a.direction, NULL, NULL FROM archive_entries a
          WHERE a.message_id = $2 AND a.tenant_id = $1 AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.message_id = $2)
       )
       SELECT m.*, EXISTS (SELECT 1 FROM messages s WHERE s.received_at = m.store_received_at AND s.id = $2) AS body_stored,
              (SELECT label FROM spam_learned_messages WHERE message_id = $2) AS learned_label,
              (SELECT label FROM spam_feedback WHERE message_id = $2 ORDER BY id DESC LIMIT 1) AS latest_label
         FROM m LIMIT 1`,
      [tenantId, messageId],
    );
    const r = res.rows[0];
    if (!r) return null;
    return {
      messageId,
      tenantId,
      storeReceivedAt: r.store_received_at.toISOString(),
      direction: r.direction,
      quarantine: r.category !== null && r.state !== null ? { category: r.category, state: r.state } : null,
      bodyStored: r.body_stored,
      learnedLabel: r.learned_label,
      latestLabel: r.latest_label,
    };
  }

  /** The tenant's labels, newest first, with what the trainer did with each. */
  async feedback(tenantId: string, opts: { messageId?: string; limit: number }): Promise<SpamFeedbackEntry[]> {
    const res = await this.pool.query<{
      id: string;
      message_id: string;
      label: SpamLabel;
      source: string;
      actor: string;
      at: Date;
      trained_at: Date | null;
      train_outcome: SpamFeedbackEntry['outcome'];
      train_detail: string | null;
    }>(
      `SELECT id, message_id, label, source, actor, at, trained_at, train_outcome, train_detail FROM spam_feedback
        WHERE tenant_id = $1 AND ($2::uuid IS NULL OR message_id = $2) ORDER BY id DESC LIMIT $3`,
      [tenantId, opts.messageId ?? null, opts.limit],
    );
    return res.rows.map((r) => ({
      id: String(r.id),
      messageId: r.message_id,
      label: r.label,
      source: r.source,
      actor: r.actor,
      at: r.at.toISOString(),
      trainedAt: r.trained_at ? r.trained_at.toISOString() : null,
      outcome: r.train_outcome,
      detail: r.train_detail,
    }));
  }

  async summary(tenantId: string): Promise<SpamLearningSummary> {
    const res = await this.pool.query<{ n_spam: number | null; n_ham: number | null; updated_at: Date | null; tokens: string; pending: string; untrainable: string }>(
      `SELECT t.n_spam, t.n_ham, t.updated_at,
              (SELECT count(*) FROM spam_tenant_tokens WHERE tenant_id = $1) AS tokens,
              (SELECT count(*) FROM spam_feedback WHERE tenant_id = $1 AND trained_at IS NULL) AS pending,
              (SELECT count(*) FROM spam_feedback WHERE tenant_id = $1 AND train_outcome = 'untrainable') AS untrainable
         FROM (SELECT 1) one LEFT JOIN spam_tenant_totals t ON t.tenant_id = $1`,
      [tenantId],
    );
    const r = res.rows[0]!;
    return {
      nSpam: r.n_spam ?? 0,
      nHam: r.n_ham ?? 0,
      tokens: Number(r.tokens),
      pending: Number(r.pending),
      untrainable: Number(r.untrainable),
      updatedAt: r.updated_at ? r.updated_at.toISOString() : null,
    };
  }

  /**
   * The tenant's counts for these token hashes, in one query; null when the tenant has learned
   * nothing (no totals row: the token index is not even probed).
   */
  async tokenCounts(tenantId: string, tokenHashes: readonly string[]): Promise<TenantTokenCounts | null> {
    const res = await this.pool.query<{ n_spam: number; n_ham: number; hashes: string[] | null; spam: number[] | null; ham: number[] | null }>(
      `SELECT t.n_spam, t.n_ham, c.hashes, c.spam, c.ham
         FROM spam_tenant_totals t
         CROSS JOIN LATERAL (SELECT array_agg(token_hash::text) AS hashes, array_agg(spam_count) AS spam, array_agg(ham_count) AS ham
                               FROM spam_tenant_tokens WHERE tenant_id = $1 AND token_hash = ANY($2::bigint[])) c
        WHERE t.tenant_id = $1`,
      [tenantId, tokenHashes],
    );
    const r = res.rows[0];
    if (!r || r.n_spam + r.n_ham === 0) return null;
    const tokens = new Map<string, { spam: number; ham: number }>();
    (r.hashes ?? []).forEach((hash, i) => tokens.set(hash, { spam: r.spam![i]!, ham: r.ham![i]! }));
    return { nSpam: r.n_spam, nHam: r.n_ham, tokens };
  }

  /**
   * One training batch, in one transaction: locks up to `limit` untrained feedback rows (SKIP
   * LOCKED: replicas share the work, never train a row twice), asks `plan` what they change, and
   * applies the counts, the contributions and the trained_at stamps together, so a crash leaves
   * either all of it or none (the rows are then picked up again). A message's rows are trained
   * in order: a row waits while an earlier row of the same message is untrained (another replica
   * may hold it). Returns how many rows were trained.
   */
  async trainBatch(limit: number, plan: (rows: PendingSpamFeedback[]) => Promise<SpamTrainingPlan>): Promise<number> {
    return inTransaction(this.pool, async (client) => {
      const res = await client.query<{ id: string; tenant_id: string; message_id: string; store_received_at: Date; label: SpamLabel; learned_label: SpamLabel | null; token_hashes: string[] | null }>(
        `SELECT f.id, f.tenant_id, f.message_id, f.store_received_at, f.label, l.label AS learned_label, l.token_hashes::text[] AS token_hashes
           FROM spam_feedback f LEFT JOIN spam_learned_messages l ON l.message_id = f.message_id
          WHERE f.trained_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM spam_feedback e WHERE e.message_id = f.message_id AND e.trained_at IS NULL AND e.id < f.id)
          ORDER BY f.id LIMIT $1
          FOR UPDATE OF f SKIP LOCKED`,
        [limit],
      );
      if (res.rows.length === 0) return 0;
      const rows: PendingSpamFeedback[] = res.rows.map((r) => ({
        id: String(r.id),
        tenantId: r.tenant_id,
        messageId: r.message_id,
        storeReceivedAt: r.store_received_at.toISOString(),
        label: r.label,
        learned: r.learned_label !== null ? { label: r.learned_label, tokenHashes: r.token_hashes ?? [] } : null,
      }));
      await applyPlan(client, await plan(rows));
      return rows.length;
    });
  }
}

/**
 * Writes a plan. Rows are locked in one global order (tenant, then token; totals by tenant) so
 * two replicas training overlapping tokens wait for each other instead of deadlocking. Counts
 * never go below 0: a reversal takes away only what was added, and were the tables ever edited by
 * hand, a clamp is better than a training loop that fails on the same batch for ever.
 */
async function applyPlan(client: PoolClient, plan: SpamTrainingPlan): Promise<void> {
  const deltas = plan.tokenDeltas.filter((d) => d.spam !== 0 || d.ham !== 0).sort(byTenantThenHash);
  if (deltas.length > 0) {
    const keys = [deltas.map((d) => d.tenantId), deltas.map((d) => d.tokenHash)];
    await client.query(
      `INSERT INTO spam_tenant_tokens AS t (tenant_id, token_hash, spam_count, ham_count)
       SELECT d.tenant_id, d.token_hash, d.spam, d.ham
         FROM unnest($1::uuid[], $2::bigint[], $3::int[], $4::int[]) WITH ORDINALITY AS d(tenant_id, token_hash, spam, ham, n)
        ORDER BY d.n
       ON CONFLICT (tenant_id, token_hash) DO UPDATE
         SET spam_count = greatest(t.spam_count + EXCLUDED.spam_count, 0), ham_count = greatest(t.ham_count + EXCLUDED.ham_count, 0)`,
      [...keys, deltas.map((d) => d.spam), deltas.map((d) => d.ham)],
    );
    // A token whose counts fell to nothing is dropped, so the table holds only what still counts.
    await client.query(
      `DELETE FROM spam_tenant_tokens t USING unnest($1::uuid[], $2::bigint[]) AS d(tenant_id, token_hash)
        WHERE t.tenant_id = d.tenant_id AND t.token_hash = d.token_hash AND t.spam_count <= 0 AND t.ham_count <= 0`,
      keys,
    );
    await client.query(
      `UPDATE spam_tenant_tokens t SET spam_count = greatest(t.spam_count, 0), ham_count = greatest(t.ham_count, 0)
         FROM unnest($1::uuid[], $2::bigint[]) AS d(tenant_id, token_hash)
        WHERE t.tenant_id = d.tenant_id AND t.token_hash = d.token_hash AND (t.spam_count < 0 OR t.ham_count < 0)`,
      keys,
    );
  }
  const totals = plan.totalDeltas.filter((d) => d.spam !== 0 || d.ham !== 0).sort((a, b) => (a.tenantId < b.tenantId ? -1 : a.tenantId > b.tenantId ? 1 : 0));
  if (totals.length > 0) {
    await client.query(
      `INSERT INTO spam_tenant_totals AS t (tenant_id, n_spam, n_ham)
       SELECT d.tenant_id, greatest(d.spam, 0), greatest(d.ham, 0)
         FROM unnest($1::uuid[], $2::int[], $3::int[]) WITH ORDINALITY AS d(tenant_id, spam, ham, n) ORDER BY d.n
       ON CONFLICT (tenant_id) DO UPDATE
         SET n_spam = greatest(t.n_spam + (SELECT x.spam FROM unnest($1::uuid[], $2::int[]) AS x(tenant_id, spam) WHERE x.tenant_id = EXCLUDED.tenant_id), 0),
             n_ham = greatest(t.n_ham + (SELECT x.ham FROM unnest($1::uuid[], $3::int[]) AS x(tenant_id, ham) WHERE x.tenant_id = EXCLUDED.tenant_id), 0),
             updated_at = now()`,
      [totals.map((d) => d.tenantId), totals.map((d) => d.spam), totals.map((d) => d.ham)],
    );
  }
  for (const l of plan.learned) {
    await client.query(
      `INSERT INTO spam_learned_messages (message_id, tenant_id, label, token_hashes, feedback_id) VALUES ($1, $2, $3, $4::bigint[], $5)
       ON CONFLICT (message_id) DO UPDATE SET label = EXCLUDED.label, token_hashes = EXCLUDED.token_hashes, feedback_id = EXCLUDED.feedback_id, learned_at = now()`,
      [l.messageId, l.tenantId, l.label, l.tokenHashes, l.feedbackId],
    );
  }
  if (plan.stamps.length > 0) {
    await client.query(
      `UPDATE spam_feedback f SET trained_at = now(), train_outcome = s.outcome, train_detail = s.detail
         FROM unnest($1::bigint[], $2::text[], $3::text[]) AS s(id, outcome, detail) WHERE f.id = s.id`,
      [plan.stamps.map((s) => s.id), plan.stamps.map((s) => s.outcome), plan.stamps.map((s) => s.detail)],
    );
  }
}
