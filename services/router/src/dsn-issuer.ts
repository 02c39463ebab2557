import { createHash } from 'node:crypto';
import { routingKeys, type DeliveryResultPayload, type MessageFilteredPayload } from '@moat/contracts';
import { MoatError, uuidFrom, type Broker, type Logger } from '@moat/runtime';
import type { Delivery, MessageStore } from '@moat/store';
import { buildDsn } from './dsn.js';
import type { RoutingInput } from './destinations.js';
import type { Notice } from './notices.js';

/** The original message a DSN reports on: a delivery row, or a message the filter rejected. */
type DsnSource = Pick<Delivery, 'messageId' | 'tenantId' | 'receivedAt' | 'mailFrom' | 'prependHeaders'>;

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
    const { log } = this.opts;
    if (notice.action === 'delayed') {
      // Once per delivery: a later attempt finds the warning's deliveries and sends nothing new.
      // (A first pass that died after storing but before routing left no delivery rows, and its
      // redelivered result rebuilds the same DSN with the same store key.)
      if ((await this.opts.deliveriesOf(notice.dsnMessageId)).length > 0) return;
    }
    await this.send(row, notice, { dsnFor: row.messageId, deliveryId: row.id, attempt: row.attempt, action: notice.action, recipients: notice.recipients.map((r) => r.rcpt) });
    log.info({ dsnMessageId: notice.dsnMessageId, messageId: row.messageId, deliveryId: row.id, attempt: row.attempt, action: notice.action, recipients: notice.recipients.length }, 'DSN issued');
  }

  /**
   * The bounce for a message the filter rejected after SMTP had accepted it (tenant policy: a
   * reject score, a DMARC p=reject honoured): the sender must learn that it was not delivered
   * (DESIGN.md Promise 2), so every recipient is reported `failed` with 5.7.1 and the filter's
   * reasons. The DSN's id derives from the message id and it is dated when the original was
   * received, so a redelivered verdict rebuilds the same bytes under the same store key. The
   * caller skips the null sender (no DSN to a DSN). Returns the DSN's message id.
   */
  async issueRejection(p: MessageFilteredPayload): Promise<string> {
    const receivedAt = new Date(p.store.receivedAt);
    // One line, bounded: the reasons are the filter's own words (score, DMARC policy), and a DSN line stays short.
    const why = (p.reasons.join('; ') || 'no reason given').replace(/\s+/g, ' ').slice(0, 900);
    const reply = { code: null, enhanced: '5.7.1', text: `rejected by the recipient's filter policy: ${why}` };
    const notice: Notice = {
      action: 'failed',
      dsnMessageId: uuidFrom(p.messageId, 'dsn', 'rejected'),
      recipients: p.rcptTo.map((rcpt) => ({ rcpt, fate: 'failed', reply, remoteMta: null, lastAttemptAt: receivedAt })),
      at: receivedAt,
      willRetryUntil: null,
    };
    const source: DsnSource = { messageId: p.messageId, tenantId: p.tenantId, receivedAt, mailFrom: p.mailFrom, prependHeaders: p.prependHeaders };
    await this.send(source, notice, { dsnFor: p.messageId, action: 'failed', rejected: true, recipients: p.rcptTo });
    this.opts.log.info({ dsnMessageId: notice.dsnMessageId, messageId: p.messageId, recipients: p.rcptTo.length }, 'DSN issued for a rejected message');
    return notice.dsnMessageId;
  }

  /** Builds, stores, records and routes one DSN; every step keyed by the notice's id (see the class comment). */
  private async send(row: DsnSource, notice: Notice, detail: Record<string, unknown>): Promise<void> {
    const { broker, store } = this.opts;
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
          detail,
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
  }

  /**
   * The original as stored, or null when it is gone for good (retention, deleted, a key no longer
   * held): the DSN is still sent, without the headers part. A store that cannot be reached now
   * throws: the result is redelivered and the DSN made later, complete.
   */
  private async readOriginal(row: DsnSource): Promise<Buffer | null> {
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
