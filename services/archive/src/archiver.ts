import { routingKeys, type AnyEvent, type EventOf } from '@moat/contracts';
import { PermanentFailure, uuidFrom, type Broker, type Logger } from '@moat/runtime';
import type { ArchiveEntryInput, ArchiveRepository } from '@moat/store';

export interface ArchiverDependencies {
  archive: Pick<ArchiveRepository, 'record'>;
  broker: Pick<Broker, 'envelope' | 'publish'>;
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

/** The id of the `archived` tracking event for a filtered event: re-publishing after a redelivery repeats it. */
export function archivedEventId(filteredEventId: string): string {
  return uuidFrom(filteredEventId, 'message.event', 'archived');
}

/**
 * message.filtered → a LiveArchive entry, then an `archived` message.event for tracking.
 * Idempotent end to end: the row is keyed by the message id (a redelivery inserts nothing) and
 * the tracking event has a deterministic id (the tracker collapses the repeat). The event is
 * published on every delivery, not only when the row is new, because a crash between the insert
 * and the publish would otherwise lose it. A database or broker outage throws and the broker
 * redelivers after a back-off.
 */
export class Archiver {
  constructor(private readonly deps: ArchiverDependencies) {}

  async handle(event: AnyEvent): Promise<void> {
    if (event.type !== 'message.filtered') throw new PermanentFailure(`archive consumes message.filtered, got ${event.type}`);
    const entry = archiveEntryFor(event);
    const inserted = await this.deps.archive.record(entry);
    const tracking = this.deps.broker.envelope(
      'message.event',
      { messageId: entry.messageId, tenantId: entry.tenantId, kind: 'archived', rcpt: entry.rcpts, detail: { verdict: entry.verdict } },
      archivedEventId(event.id),
    );
    await this.deps.broker.publish(routingKeys.messageEvent, tracking);
    this.deps.log.info({ messageId: entry.messageId, eventId: event.id, duplicate: !inserted }, inserted ? 'message archived' : 'message already archived');
  }
}
