import type { MessageFilteredPayload } from '@moat/contracts';
import { inTransaction, type Pool, type PoolClient } from '@moat/runtime';
import type { MessageStore, StoredMessage } from './message-store.js';
import type { QuarantineCategory } from './quarantine.js';

// =============================================================================================
// Quarantine digests (issue 5; migration 1732700023000). The archive finds mailboxes with new
// quarantined messages and records each digest with its body and its cursor in one transaction;
// the gateway records the use of each release link. Rules (who gets a link, what the mail says)
// live in the archive and the gateway; this module only reads and writes.
// =============================================================================================

/** A mailbox that has quarantined messages no digest has listed yet. */
export interface DigestMailbox {
  tenantId: string;
  /** Lower-case envelope recipient. */
  mailbox: string;
}

/** A quarantined message as a digest lists it. */
export interface DigestItem {
  messageId: string;
  quarantinedAt: Date;
  expiresAt: Date;
  mailFrom: string;
  fromHeader: string | null;
  subject: string | null;
  category: QuarantineCategory;
}

/** A digest to record: its row (the outbox entry) and the body to store with it. */
export interface DigestRecord {
  digestId: string;
  tenantId: string;
  mailbox: string;
  previousCutoff: Date | null;
  cutoff: Date;
  messageCount: number;
  createdAt: Date;
  /** The message.filtered payload to publish for it. */
  payload: MessageFilteredPayload;
  body: StoredMessage;
}

export interface PendingDigest {
  digestId: string;
  createdAt: Date;
  payload: MessageFilteredPayload;
}

/** The statements a digest run makes while it holds one mailbox's cursor. */
export class DigestMailboxTransaction {
  constructor(
    private readonly client: PoolClient,
    readonly tenantId: string,
    readonly mailbox: string,
    /** The cut-off of the last period handled for the mailbox; null before its first. */
    readonly lastCutoff: Date | null,
  ) {}

  /**
   * The mailbox's inbound messages still waiting, quarantined after the last cut-off and up to
   * this one, not yet due to expire, oldest first; at most `limit`, and how many there are.
   */
  async newItems(cutoff: Date, now: Date, limit: number): Promise<{ items: DigestItem[]; total: number }> {
    const res = await this.client.query<{
      message_id: string;
      quarantined_at: Date;
      expires_at: Date;
      mail_from: string;
      from_header: string | null;
      subject: string | null;
      category: QuarantineCategory;
      total: string;
    }>(
      `SELECT message_id, quarantined_at, expires_at, mail_from, from_header, subject, category, count(*) OVER () AS total
         FROM quarantine
        WHERE tenant_id = $1 AND state = 'quarantined' AND direction = 'inbound'
          AND ($2::timestamptz IS NULL OR quarantined_at > $2) AND quarantined_at <= $3 AND expires_at > $4
          AND EXISTS (SELECT 1 FROM unnest(rcpts) r WHERE lower(r) = $5)
        ORDER BY quarantined_at, message_id
        LIMIT $6`,
      [this.tenantId, this.lastCutoff, cutoff, now, this.mailbox, limit],
    );
    return {
      items: res.rows.map((r) => ({
        messageId: r.message_id,
        quarantinedAt: r.quarantined_at,
        expiresAt: r.expires_at,
        mailFrom: r.mail_from,
        fromHeader: r.from_header,
        subject: r.subject,
        category: r.category,
      })),
      total: res.rows.length > 0 ? Number(res.rows[0]!.total) : 0,
    };
  }

  /** Records the digest, stores its body (encrypted) and moves the cursor: one commit for all three. */
  async record(d: DigestRecord, store: Pick<MessageStore, 'putWithin'>): Promise<void> {
    await store.putWithin(this.client, d.body);
    await this.client.query(
      `INSERT INTO digest_runs (digest_id, tenant_id, mailbox, previous_cutoff, cutoff, message_count, created_at, payload)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [d.digestId, d.tenantId, d.mailbox, d.previousCutoff, d.cutoff, d.messageCount, d.createdAt, JSON.stringify(d.payload)],
    );
    await this.advance(d.cutoff, d.createdAt);
  }

  /** Moves the cursor without a digest (nothing new in the period). */
  async advance(cutoff: Date, digestAt: Date | null = null): Promise<void> {
    await this.client.query(
      `UPDATE digest_mailboxes SET last_cutoff = $3, last_digest_at = coalesce($4, last_digest_at) WHERE tenant_id = $1 AND mailbox = $2`,
      [this.tenantId, this.mailbox, cutoff, digestAt],
    );
  }
}

export class DigestRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Mailboxes with inbound messages quarantined after their last digest's cut-off and at or before
   * `cutoff`, still waiting and not expired. Only recipients in one of the tenant's protected
   * domains: a digest goes to the tenant's own server, never to an outside address. Not for a
   * tenant that turned digests off, and, for one that turned them back on, only messages
   * quarantined since (tenant_filter_policies.quarantine_digests, _since).
   */
  async mailboxesWithNews(cutoff: Date, now: Date, limit: number): Promise<DigestMailbox[]> {
    const res = await this.pool.query<{ tenant_id: string; mailbox: string }>(
      `SELECT DISTINCT q.tenant_id, lower(r.rcpt) AS mailbox
         FROM quarantine q
        CROSS JOIN LATERAL unnest(q.rcpts) AS r(rcpt)
         JOIN domains d ON d.tenant_id = q.tenant_id AND d.name = lower(substring(r.rcpt from '@([^@]+)$'))
         LEFT JOIN digest_mailboxes c ON c.tenant_id = q.tenant_id AND c.mailbox = lower(r.rcpt)
         LEFT JOIN tenant_filter_policies p ON p.tenant_id = q.tenant_id
        WHERE q.state = 'quarantined' AND q.direction = 'inbound' AND q.quarantined_at <= $1 AND q.expires_at > $2
          AND (c.last_cutoff IS NULL OR q.quarantined_at > c.last_cutoff)
          AND coalesce(p.quarantine_digests, true)
          AND (p.quarantine_digests_since IS NULL OR q.quarantined_at > p.quarantine_digests_since)
        LIMIT $3`,
      [cutoff, now, limit],
    );
    return res.rows.map((r) => ({ tenantId: r.tenant_id, mailbox: r.mailbox }));
  }

  /**
   * Runs fn holding the mailbox's cursor (created on first use). Null, without running fn, when
   * another replica holds it right now (it is making this digest) — SKIP LOCKED, so replicas share
   * the mailboxes instead of queueing on them — or when the tenant has just turned digests off.
   * Everything fn writes commits together. The cursor fn sees is never before the moment the
   * tenant last turned digests on.
   */
  async withMailbox<T>(m: DigestMailbox, fn: (tx: DigestMailboxTransaction) => Promise<T>): Promise<T | null> {
    await this.pool.query('INSERT INTO digest_mailboxes (tenant_id, mailbox) VALUES ($1, $2) ON CONFLICT DO NOTHING', [m.tenantId, m.mailbox]);
    return inTransaction(this.pool, async (client) => {
      const res = await client.query<{ last_cutoff: Date | null; digests_on: boolean; digests_since: Date | null }>(
        `SELECT c.last_cutoff, coalesce(p.quarantine_digests, true) AS digests_on, p.quarantine_digests_since AS digests_since
           FROM digest_mailboxes c LEFT JOIN tenant_filter_policies p ON p.tenant_id = c.tenant_id
          WHERE c.tenant_id = $1 AND c.mailbox = $2 FOR UPDATE OF c SKIP LOCKED`,
        [m.tenantId, m.mailbox],
      );
      const row = res.rows[0];
      if (!row || !row.digests_on) return null;
      const since = row.digests_since;
      const lastCutoff = since !== null && (row.last_cutoff === null || since > row.last_cutoff) ? since : row.last_cutoff;
      return fn(new DigestMailboxTransaction(client, m.tenantId, m.mailbox, lastCutoff));
    });
  }

  /** Digests recorded but not confirmed published before `createdBefore` (a crash in between), oldest first. */
  async unpublished(createdBefore: Date, limit: number): Promise<PendingDigest[]> {
    const res = await this.pool.query<{ digest_id: string; created_at: Date; payload: MessageFilteredPayload }>(
      'SELECT digest_id, created_at, payload FROM digest_runs WHERE published_at IS NULL AND created_at < $1 ORDER BY created_at LIMIT $2',
      [createdBefore, limit],
    );
    return res.rows.map((r) => ({ digestId: r.digest_id, createdAt: r.created_at, payload: r.payload }));
  }

  /**
   * Forgets what can no longer matter: published digests and link uses older than `before`. The
   * caller passes a time beyond the longest link lifetime, so no link that still verifies loses
   * its record of being used.
   */
  async prune(before: Date): Promise<{ runs: number; linkUses: number }> {
    const runs = await this.pool.query('DELETE FROM digest_runs WHERE published_at IS NOT NULL AND created_at < $1', [before]);
    const uses = await this.pool.query('DELETE FROM digest_link_uses WHERE claimed_at < $1', [before]);
    return { runs: runs.rowCount ?? 0, linkUses: uses.rowCount ?? 0 };
  }

  async markPublished(digestId: string): Promise<void> {
    await this.pool.query('UPDATE digest_runs SET published_at = now() WHERE digest_id = $1 AND published_at IS NULL', [digestId]);
  }
}

/** Where a digest link stands in digest_link_uses. */
export type DigestLinkUse = 'unused' | 'in-progress' | 'used';

/**
 * The single use of digest release links, enforced by the primary key on the nonce: of two
 * concurrent claims exactly one inserts. A claim is a lease: a request that died after claiming
 * (the link unused) frees the link once the lease ran out; a failed release gives it back at once.
 */
export class DigestLinkRepository {
  constructor(private readonly pool: Pool) {}

  /** True when this call claimed the link; false when it is used, or claimed by a request still in its lease. */
  async claim(link: { nonce: string; messageId: string; mailbox: string }, leaseMs: number): Promise<boolean> {
    const res = await this.pool.query(
      `INSERT INTO digest_link_uses (nonce, message_id, mailbox) VALUES ($1, $2, $3)
       ON CONFLICT (nonce) DO UPDATE SET claimed_at = now()
         WHERE digest_link_uses.used_at IS NULL AND digest_link_uses.claimed_at < now() - make_interval(secs => $4::double precision / 1000)
       RETURNING nonce`,
      [link.nonce, link.messageId, link.mailbox, leaseMs],
    );
    return res.rowCount === 1;
  }

  /** The release went through: the link is spent for good. */
  async markUsed(nonce: string): Promise<void> {
    await this.pool.query('UPDATE digest_link_uses SET used_at = now() WHERE nonce = $1 AND used_at IS NULL', [nonce]);
  }

  /** The release failed before it was done: the link may be tried again. */
  async giveBack(nonce: string): Promise<void> {
    await this.pool.query('DELETE FROM digest_link_uses WHERE nonce = $1 AND used_at IS NULL', [nonce]);
  }

  async state(nonce: string): Promise<DigestLinkUse> {
    const res = await this.pool.query<{ used_at: Date | null }>('SELECT used_at FROM digest_link_uses WHERE nonce = $1', [nonce]);
    const row = res.rows[0];
    if (!row) return 'unused';
    return row.used_at ? 'used' : 'in-progress';
  }
}
