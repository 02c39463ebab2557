import type { AnyEvent, EventOf } from '@moat/contracts';
import { PermanentFailure, type Logger } from '@moat/runtime';
import type { ArchiveEntryInput, ArchiveRepository } from '@moat/store';

export interface ArchiverDependencies {
  archive: Pick<ArchiveRepository, 'record'>;
  log: Logger;
}

/** The archive row for a filtered message: the envelope, the headers the filter read, the verdict. */
export function archiveEntryFor(event: EventOf<'message.filtered'>): ArchiveEntryInput {
  const p = event.payload;
  return {
    messageId: p.messageId,
    tenantId: p.tenantId,
    receivedAt: p.receivedAt,
    direction: p.direction,
    mailFrom: p.mailFrom,
    rcpts: p.rcptTo,
    fromHeader: p.headers.from,
    toHeader: p.headers.to,
    subject: p.headers.subject,
    dateHeader: p.headers.date,
    messageIdHeader: p.headers.messageIdHeader,
    size: p.size,
    verdict: p.verdict,
  };
}

/**
 * message.filtered → a LiveArchive entry. The archive row is the record that a message was
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
    const inserted = await this.deps.archive.record(entry);
    this.deps.log.info({ messageId: entry.messageId, eventId: event.id, duplicate: !inserted }, inserted ? 'message archived' : 'message already archived');
  }
}
