import { allRecipients, wholeMessageVerdict, type AnyEvent, type EventOf } from '@moat/contracts';
import { PermanentFailure, type Logger } from '@moat/runtime';
import type { ArchiveEntryInput, ArchiveRepository, QuarantineInput, QuarantineRepository } from '@moat/store';
import { quarantineCategory } from './quarantine-category.js';

export interface ArchiverDependencies {
  archive: Pick<ArchiveRepository, 'record'>;
  quarantine: Pick<QuarantineRepository, 'record'>;
  /** Days a quarantined message waits for a decision before the retention sweep expires it. */
  quarantineRetentionDays: number;
  log: Logger;
}

/**
 * The archive row for a filtered message: the envelope, the headers the filter read, the verdict.
 * One row per message: every part of a split message gives the same row (every recipient, the
 * whole message's verdict), so whichever part comes first, the row is the same.
 */
export function archiveEntryFor(event: EventOf<'message.filtered'>): ArchiveEntryInput {
  const p = event.payload;
  return {
    messageId: p.messageId,
    tenantId: p.tenantId,
    receivedAt: p.receivedAt,
    direction: p.direction,
    mailFrom: p.mailFrom,
    rcpts: allRecipients(p),
    fromHeader: p.headers.from,
    toHeader: p.headers.to,
    subject: p.headers.subject,
    dateHeader: p.headers.date,
    messageIdHeader: p.headers.messageIdHeader,
    size: p.size,
    verdict: wholeMessageVerdict(p),
  };
}

/**
 * The quarantine row for a quarantined message: what the API lists, and the payload a release
 * re-publishes. For a split message, the quarantined part only: its recipients, its payload.
 */
export function quarantineEntryFor(event: EventOf<'message.filtered'>, retentionDays: number): QuarantineInput {
  const { preview, ...payload } = event.payload;
  return {
    messageId: payload.messageId,
    tenantId: payload.tenantId,
    storeReceivedAt: payload.store.receivedAt,
    receivedAt: payload.receivedAt,
    direction: payload.direction,
    mailFrom: payload.mailFrom,
    rcpts: payload.rcptTo,
    fromHeader: payload.headers.from,
    toHeader: payload.headers.to,
    subject: payload.headers.subject,
    size: payload.size,
    category: quarantineCategory(payload),
    reasons: payload.reasons,
    score: payload.score,
    retentionDays,
    payload,
    preview: preview ?? null,
  };
}

/**
 * message.filtered → a LiveArchive entry, and for verdict `quarantine` a quarantine row (the
 * archive keeps the quarantine, DESIGN.md). A release (the same message filtered again with
 * verdict deliver, published by the gateway) finds both rows there and changes neither: the
 * gateway moved the quarantine row to `released` before publishing it. The archive row is the record that a message was
 * archived (LiveArchive reads archive_entries), so no `archived` message.event is published: that
 * would cost a broker hop and a tracking write per message for a timeline line nobody needs.
 * Idempotent: the row is keyed by the message id, so a redelivery inserts nothing. A database
 * outage throws and the broker redelivers after a back-off.
 */
export class Archiver {
  constructor(private readonly deps: ArchiverDependencies) {}

  async handle(event: AnyEvent): Promise<void> {
    if (event.type !== 'message.filtered') throw new PermanentFailure(`archive consumes message.filtered, got ${event.type}`);
    const entry = archiveEntryFor(event);
    if (event.payload.verdict === 'quarantine') {
      const q = quarantineEntryFor(event, this.deps.quarantineRetentionDays);
      const fresh = await this.deps.quarantine.record(q);
      this.deps.log.info({ messageId: q.messageId, category: q.category, preview: q.preview !== null, duplicate: !fresh }, fresh ? 'message quarantined' : 'message already in quarantine');
    }
    const inserted = await this.deps.archive.record(entry);
    this.deps.log.info({ messageId: entry.messageId, eventId: event.id, duplicate: !inserted }, inserted ? 'message archived' : 'message already archived');
  }
}
