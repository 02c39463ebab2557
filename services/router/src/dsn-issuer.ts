import { createHash } from 'node:crypto';
import { routingKeys, type DeliveryResultPayload } from '@moat/contracts';
import { MoatError, uuidFrom, type Broker, type Logger } from '@moat/runtime';
import type { Delivery, MessageStore } from '@moat/store';
import { buildDsn } from './dsn.js';
import type { RoutingInput } from './destinations.js';
import type { Notice } from './notices.js';

export interface DsnIssuerOptions {
  broker: Broker;
  store: Pick<MessageStore, 'get' | 'put'>;
  /** Routes a message and publishes its first attempts: the router's own path, idempotent per message id. */
  routeAndPublish: (input: RoutingInput) => Promise<void>;
  /** The deliveries of a message (to tell whether a delay warning exists already). */
  deliveriesOf: (messageId: string) => Promise<Delivery[]>;
  /** Host name in Reporting-MTA, MAILER-DAEMON@… and the Message-ID. */
  reportingMta: string;
  log: Logger;
}

export const dsnSubjects = { failed: 'Undelivered Mail Returned to Sender', delayed: 'Delayed Mail (still being retried)' } as const;

/**
 * Writes and sends a DSN: builds it from the original's headers, stores it (encrypted, the
 * original's tenant), records it for tracking as an outbound message, and routes it like any
 * message (MAIL FROM:<>, to the original's envelope sender). Every step is keyed by the notice's
 * deterministic id, so running it again after a crash (the result is redelivered) adds nothing:
 * the store keeps the first copy (ON CONFLICT DO NOTHING on (receivedAt, id), receivedAt being
 * the attempt's end), tracking collapses events by id, and the routing decision of a message is
 * made once (createForMessage), its first attempts re-published while they wait (harmless:
 * a sender claims an attempt once).
 */
export class DsnIssuer {
  constructor(private readonly opts: DsnIssuerOptions) {}

  async issue(row: Delivery, result: DeliveryResultPayload, notice: Notice): Promise<void> {
    const { broker, store, log } = this.opts;
    if (notice.action === 'delayed') {
      // Once per delivery: a later attempt finds the warning's deliveries and sends nothing new.
      // (A first pass that died after storing but before routing left no delivery rows, and its
      // redelivered result rebuilds the same DSN with the same store key.)
      if ((await this.opts.deliveriesOf(notice.dsnMessageId)).length > 0) return;
    }
    const original = await this.readOriginal(row);
    const raw = buildDsn({
      dsnMessageId: notice.dsnMessageId,
      reportingMta: this.opts.reportingMta,
      action: notice.action,
      to: row.mailFrom,
      originalMessageId: row.messageId,
      arrivalDate: row.receivedAt,
      date: notice.at,
      willRetryUntil: notice.willRetryUntil,
      recipients: notice.recipients,
      original: original ? { prepended: row.prependHeaders, raw: original } : null,
    });
    const sha256 = createHash('sha256').update(raw).digest('hex');
    await store.put({ id: notice.dsnMessageId, tenantId: row.tenantId, receivedAt: notice.at, sha256, raw });
    await broker.publish(
      routingKeys.messageEvent,
      broker.envelope(
        'message.event',
        {
          messageId: notice.dsnMessageId,
          tenantId: row.tenantId,
          kind: 'routed',
          rcpt: [],
          detail: { dsnFor: row.messageId, deliveryId: row.id, attempt: row.attempt, action: notice.action, recipients: notice.recipients.map((r) => r.rcpt) },
          generated: {
            direction: 'outbound',
            mailFrom: '',
            rcptTo: [row.mailFrom],
            subject: dsnSubjects[notice.action],
            size: raw.length,
            sha256,
            receivedAt: notice.at.toISOString(),
          },
        },
        uuidFrom(notice.dsnMessageId, 'generated'),
      ),
    );
    await this.opts.routeAndPublish({
      messageId: notice.dsnMessageId,
      tenantId: row.tenantId,
      receivedAt: notice.at,
      direction: 'outbound',
      // RFC 5321 §4.5.5: notifications are sent with the null reverse-path.
      mailFrom: '',
      rcptTo: [row.mailFrom],
      prependHeaders: '',
      size: raw.length,
    });
    log.info({ dsnMessageId: notice.dsnMessageId, messageId: row.messageId, deliveryId: row.id, attempt: row.attempt, action: notice.action, recipients: notice.recipients.length }, 'DSN issued');
  }

  /**
   * The original as stored, or null when it is gone for good (retention, deleted, a key no longer
   * held): the DSN is still sent, without the headers part. A store that cannot be reached now
   * throws: the result is redelivered and the DSN made later, complete.
   */
  private async readOriginal(row: Delivery): Promise<Buffer | null> {
    try {
      return await this.opts.store.get({ messageId: row.messageId, receivedAt: row.receivedAt.toISOString() });
    } catch (err) {
      if (err instanceof MoatError && err.permanent) {
        this.opts.log.warn({ messageId: row.messageId, err: err.message }, 'original message unreadable; the DSN goes without its headers');
        return null;
      }
      throw err;
    }
  }
}
