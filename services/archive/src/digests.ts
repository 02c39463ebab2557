import { routingKeys } from '@moat/contracts';
import { uuidFrom, type Broker, type Logger } from '@moat/runtime';
import { isDangerous, newDigestNonce, signDigestLink, type DigestItem, type DigestMailbox, type DigestMailboxTransaction, type DigestRepository, type MessageStore, type PendingDigest } from '@moat/store';
import { composeDigest, digestPayload, type DigestEntry } from './digest-mail.js';

export interface DigestJobOptions {
  digests: Pick<DigestRepository, 'mailboxesWithNews' | 'withMailbox' | 'unpublished' | 'markPublished' | 'prune'>;
  store: Pick<MessageStore, 'putWithin'>;
  broker: Pick<Broker, 'publish' | 'envelope'>;
  /** MOAT_DIGEST_INTERVAL_MS: the period; cut-offs fall on its multiples (UTC epoch). */
  intervalMs: number;
  /** MOAT_DIGEST_LINK_KEY, decoded. */
  linkKey: Buffer;
  /** MOAT_DIGEST_LINK_TTL_HOURS, in ms. */
  linkTtlMs: number;
  /** MOAT_PUBLIC_URL, without a trailing slash. */
  publicUrl: string;
  /** MOAT_DIGEST_FROM. */
  from: string;
  /** MOAT_DIGEST_MAX_ITEMS: messages listed per digest. */
  maxItems: number;
  log: Logger;
  /** Fresh link nonces (tests may fix them). */
  nonce?: () => string;
}

/**
 * How long after a period ends its digest is made: a message is stamped `quarantined_at` by the
 * statement that inserts it, and becomes visible when that commits a moment later. A digest made
 * right at the cut-off could miss a row stamped just before it, which the next digest (after the
 * cut-off) would skip too.
 */
export const digestSettleMs = 30_000;

/** The end of the last complete period at `now`: the same instant on every replica. */
export function digestCutoff(now: Date, intervalMs: number, settleMs = digestSettleMs): Date {
  return new Date(Math.floor((now.getTime() - settleMs) / intervalMs) * intervalMs);
}

/** The id of a mailbox's digest for a period: a second attempt at the same digest has the same id. */
export function digestIdFor(m: DigestMailbox, cutoff: Date): string {
  return uuidFrom('quarantine-digest', m.tenantId, m.mailbox, cutoff.toISOString());
}

/** The link of one listed message: spam and policy only, valid until the earlier of the link lifetime and the message's own expiry. */
export function digestEntryFor(item: DigestItem, opts: { mailbox: string; now: Date; linkTtlMs: number; linkKey: Buffer; publicUrl: string; nonce: () => string }): DigestEntry & { linkExpiresAt: Date | null } {
  const base = { messageId: item.messageId, quarantinedAt: item.quarantinedAt, from: item.fromHeader ?? item.mailFrom, subject: item.subject, category: item.category };
  if (isDangerous(item.category)) return { ...base, releaseUrl: null, linkExpiresAt: null };
  const expiresAt = new Date(Math.min(opts.now.getTime() + opts.linkTtlMs, item.expiresAt.getTime()));
  const token = signDigestLink(opts.linkKey, { messageId: item.messageId, mailbox: opts.mailbox, expiresAt, nonce: opts.nonce() });
  return { ...base, releaseUrl: `${opts.publicUrl}/digest/release/${token}`, linkExpiresAt: expiresAt };
}

export interface DigestRunSummary {
  /** Digests made and published by this run. */
  sent: number;
  /** Digests a crashed run had recorded and this run published. */
  republished: number;
}

/**
 * The quarantine digest job (issue 5). Each run, for the last complete period (cut-off at a
 * multiple of the interval), every mailbox with inbound messages quarantined since its last
 * digest gets one digest listing them. Exactly once per mailbox and period, with any number of
 * archive replicas and crashes: the mailbox's cursor row is locked while its digest is made, and
 * the digest's row (its outbox entry, unique per mailbox and cut-off), its body in the message
 * store and the cursor move commit together. The digest is published after the commit (event id
 * from the digest id); a crash in between leaves the row unpublished, and the next run publishes it
 * (the router routes a message id once, so a double publish delivers once).
 */
export class DigestJob {
  private readonly nonce: () => string;

  constructor(private readonly opts: DigestJobOptions) {
    this.nonce = opts.nonce ?? newDigestNonce;
  }

  async runOnce(now: Date = new Date()): Promise<DigestRunSummary> {
    const republished = await this.publishLeftovers(now);
    const cutoff = digestCutoff(now, this.opts.intervalMs);
    let sent = 0;
    const seen = new Set<string>();
    for (;;) {
      const mailboxes = (await this.opts.digests.mailboxesWithNews(cutoff, now, 200)).filter((m) => !seen.has(`${m.tenantId}/${m.mailbox}`));
      // Mailboxes another replica holds come back until it commits: seen once is enough here.
      if (mailboxes.length === 0) break;
      for (const m of mailboxes) {
        seen.add(`${m.tenantId}/${m.mailbox}`);
        const pending = await this.opts.digests.withMailbox(m, (tx) => this.makeDigest(tx, cutoff, now));
        if (pending) {
          await this.publish(pending);
          sent++;
        }
      }
    }
    if (sent > 0 || republished > 0) this.opts.log.info({ cutoff: cutoff.toISOString(), sent, republished }, 'quarantine digests sent');
    // The longest lifetime a link can have been given (MOAT_DIGEST_LINK_TTL_HOURS at most 90
    // days, whatever it is set to now) and a day more: a used link's record outlives the link.
    await this.opts.digests.prune(new Date(now.getTime() - 91 * 86_400_000));
    return { sent, republished };
  }

  /** Inside the mailbox's transaction: the digest for this period, or null when there is nothing (new) to send. */
  private async makeDigest(tx: DigestMailboxTransaction, cutoff: Date, now: Date): Promise<PendingDigest | null> {
    // Another replica (or an earlier run) handled this period already.
    if (tx.lastCutoff !== null && tx.lastCutoff.getTime() >= cutoff.getTime()) return null;
    const { items, total } = await tx.newItems(cutoff, now, this.opts.maxItems);
    if (total === 0) {
      // The news it was picked for went away (released, deleted) before the lock: nothing to say.
      await tx.advance(cutoff);
      return null;
    }
    const mailbox: DigestMailbox = { tenantId: tx.tenantId, mailbox: tx.mailbox };
    const digestId = digestIdFor(mailbox, cutoff);
    const entries = items.map((item) =>
      digestEntryFor(item, { mailbox: tx.mailbox, now, linkTtlMs: this.opts.linkTtlMs, linkKey: this.opts.linkKey, publicUrl: this.opts.publicUrl, nonce: this.nonce }),
    );
    const expiries = entries.map((e) => e.linkExpiresAt?.getTime()).filter((t): t is number => t !== undefined);
    const mail = composeDigest({
      digestId,
      mailbox: tx.mailbox,
      from: this.opts.from,
      date: now,
      entries,
      omitted: total - items.length,
      linksExpireAt: expiries.length > 0 ? new Date(Math.min(...expiries)) : null,
    });
    const payload = digestPayload({ digestId, tenantId: tx.tenantId, mailbox: tx.mailbox, createdAt: now, mail });
    await tx.record(
      { digestId, tenantId: tx.tenantId, mailbox: tx.mailbox, previousCutoff: tx.lastCutoff, cutoff, messageCount: total, createdAt: now, payload, body: { id: digestId, tenantId: tx.tenantId, receivedAt: now, sha256: payload.sha256, raw: mail.raw } },
      this.opts.store,
    );
    this.opts.log.info({ digestId, tenantId: tx.tenantId, mailbox: tx.mailbox, messages: total, listed: items.length }, 'quarantine digest recorded');
    return { digestId, createdAt: now, payload };
  }

  private async publish(d: PendingDigest): Promise<void> {
    const { broker } = this.opts;
    // The same envelope every time (id and time), so a re-publish is the same event.
    const event = { ...broker.envelope('message.filtered', d.payload, uuidFrom(d.digestId, 'digest')), occurredAt: d.createdAt.toISOString() };
    await broker.publish(routingKeys.messageFiltered, event);
    await this.opts.digests.markPublished(d.digestId);
  }

  /** Digests a run recorded but did not see confirmed (it crashed, or the broker failed): publish them now. */
  private async publishLeftovers(now: Date): Promise<number> {
    let n = 0;
    // Older than a moment: a replica that just committed one is publishing it right now.
    for (const d of await this.opts.digests.unpublished(new Date(now.getTime() - 30_000), 500)) {
      await this.publish(d);
      n++;
    }
    return n;
  }
}

/**
 * Runs the digest job every `tickMs` (a run does work only once a period has ended, so ticking
 * more often than the interval only shortens the wait after a cut-off). A failed run (database or
 * broker down) is logged and the next tick tries again: the cursor did not move. Returns stop(),
 * which waits for a run in progress.
 */
export function startDigestJob(job: Pick<DigestJob, 'runOnce'>, opts: { tickMs: number; log: Logger }): () => Promise<void> {
  let running: Promise<unknown> | null = null;
  let stopped = false;
  const tick = () => {
    if (running || stopped) return;
    running = job
      .runOnce()
      .catch((err: unknown) => opts.log.warn({ err: (err as Error).message }, 'quarantine digest run failed; trying again at the next tick'))
      .finally(() => (running = null));
  };
  const timer = setInterval(tick, opts.tickMs);
  timer.unref();
  tick();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
