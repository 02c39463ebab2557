import { routingKeys, type DeliveryRequestedPayload, type DeliveryResultPayload } from '@moat/contracts';
import { MoatError, uuidFrom, type Broker, type Logger } from '@moat/runtime';
import type { MessageStore, SealedBodyRow } from '@moat/store';
import type { SenderDeliveries } from './batched-deliveries.js';
import type { Deliverer } from './deliver.js';
import { localReply } from './reply.js';
import { subjectTagOf, tagSubject } from './subject-tag.js';

export interface SendHandlerOptions {
  broker: Broker;
  /** The deliveries table; in the service its claims and outcomes are group-committed. */
  deliveries: SenderDeliveries;
  store: MessageStore;
  deliverer: Deliverer;
  /** Lease of a claim; renewed every third of it while the attempt runs. */
  leaseMs: number;
  log: Logger;
}

export const resultEventId = (deliveryId: string, attempt: number) => uuidFrom(deliveryId, String(attempt), 'result');

/**
 * The sender's consumer of delivery.requested.<pool>:
 * 1. CLAIM the (delivery, attempt) in Postgres. No claim: a duplicate or stale request — unless
 *    this attempt's outcome is recorded and not yet reported, which is then re-published.
 * 2. Decrypt the body (read from the message store by the claim's statement), send ONE
 *    transaction (Deliverer).
 * 3. Record the outcome on the row, THEN publish delivery.result, THEN ack (the broker acks when
 *    this returns). A failed publish throws: the request comes back, finds the recorded outcome
 *    and publishes it again instead of sending the message a second time.
 */
export class SendHandler {
  constructor(private readonly opts: SendHandlerOptions) {}

  async handle(req: DeliveryRequestedPayload): Promise<void> {
    const { deliveries, log } = this.opts;
    // The claim also returns the sealed body (one round trip); it is decrypted in attempt().
    const claimed = await deliveries.claimWithBody(req.deliveryId, req.attempt, this.opts.leaseMs);
    if (!claimed) {
      const row = await deliveries.get(req.deliveryId);
      if (row && row.attempt === req.attempt && row.status === 'sending' && row.outcome?.attempt === req.attempt) {
        log.info({ deliveryId: req.deliveryId, attempt: req.attempt }, 're-publishing the recorded outcome of an attempt (its first publish failed)');
        await this.publishResult(row.outcome.result);
        return;
      }
      log.debug({ deliveryId: req.deliveryId, attempt: req.attempt, rowAttempt: row?.attempt, status: row?.status }, 'duplicate or stale delivery.requested; skipping');
      return;
    }
    const result = await this.withRenewedClaim(req, () => this.attempt(req, claimed.body));
    try {
      if (!(await deliveries.recordOutcome(req.deliveryId, req.attempt, result))) {
        log.warn({ deliveryId: req.deliveryId, attempt: req.attempt }, 'claim lost before the outcome was recorded (lease expired?); publishing the result anyway');
      }
    } catch (err) {
      // The result is still published below; only the safety net for a failed publish is missing.
      log.warn({ deliveryId: req.deliveryId, attempt: req.attempt, err: (err as Error).message }, 'could not record the outcome');
    }
    await this.publishResult(result);
    log.info(
      { deliveryId: req.deliveryId, attempt: req.attempt, remoteHost: result.remoteHost, outcomes: result.recipients.map((r) => `${r.outcome}:${r.reply.code ?? '-'}`).join(','), error: result.error },
      'delivery attempt finished',
    );
  }

  private async publishResult(result: DeliveryResultPayload): Promise<void> {
    const { broker } = this.opts;
    await broker.publish(routingKeys.deliveryResult, broker.envelope('delivery.result', result, resultEventId(result.deliveryId, result.attempt)));
  }

  /**
   * Decrypts the body read with the claim and sends; every failure here becomes per-recipient
   * outcomes, never a throw. `sealed` is null when the message is no longer in the store.
   */
  private async attempt(req: DeliveryRequestedPayload, sealed: SealedBodyRow | null): Promise<DeliveryResultPayload> {
    let raw: Buffer;
    try {
      if (!sealed) throw new MoatError('NOT_FOUND', `message ${req.store.messageId} is not in the store`, { permanent: true });
      raw = this.opts.store.openRow(req.store, sealed);
    } catch (err) {
      const code = err instanceof MoatError ? err.code : null;
      const message = (err as Error).message;
      this.opts.log.error({ deliveryId: req.deliveryId, err: message, code }, 'cannot read the message body');
      // Gone from the store (retention, deleted): it can never be delivered. Anything else
      // (master key not configured) may be fixed: defer and retry later. (Postgres unreachable
      // fails the claim's statement itself: nothing is claimed and the request comes back.)
      return this.withoutSending(req, code === 'NOT_FOUND' ? 'failed' : 'deferred', `message body unavailable: ${message}`, code === 'NOT_FOUND' ? '5.3.0' : '4.3.0');
    }
    // Moat's prepended trace/verdict headers, then the message as received: only its Subject
    // changes, and only when the tenant's filter policy tags it (subject-tag.ts).
    const tag = subjectTagOf(req.prependHeaders);
    const body = Buffer.concat([Buffer.from(req.prependHeaders, 'utf8'), tag ? tagSubject(raw, tag) : raw]);
    return this.opts.deliverer.deliver(req, body);
  }

  private withoutSending(req: DeliveryRequestedPayload, outcome: 'failed' | 'deferred', error: string, enhanced: string): DeliveryResultPayload {
    const now = new Date().toISOString();
    return {
      deliveryId: req.deliveryId,
      attempt: req.attempt,
      messageId: req.messageId,
      tenantId: req.tenantId,
      pool: req.pool,
      destination: req.destination,
      sourceIp: null,
      remoteHost: null,
      tls: false,
      startedAt: now,
      finishedAt: now,
      recipients: req.rcptTo.map((rcpt) => ({ rcpt, outcome, reply: localReply(error, enhanced) })),
      error,
    };
  }

  /**
   * Keeps the claim alive while a long attempt runs (a slow server, a big message), so the
   * router's scheduler never mistakes a working sender for a dead one and starts a second,
   * concurrent attempt of the same delivery.
   */
  private async withRenewedClaim<T>(req: DeliveryRequestedPayload, work: () => Promise<T>): Promise<T> {
    const every = Math.max(1_000, Math.floor(this.opts.leaseMs / 3));
    const timer = setInterval(() => {
      this.opts.deliveries.renewClaim(req.deliveryId, req.attempt, this.opts.leaseMs).then(
        (ok) => {
          if (!ok) this.opts.log.warn({ deliveryId: req.deliveryId, attempt: req.attempt }, 'claim lost while sending');
        },
        (err: unknown) => this.opts.log.warn({ deliveryId: req.deliveryId, err: (err as Error).message }, 'could not renew the claim'),
      );
    }, every);
    try {
      return await work();
    } finally {
      clearInterval(timer);
    }
  }
}
