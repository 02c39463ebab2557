import { queues, routingKeys, type DeliveryRequestedPayload, type DeliveryResultPayload } from '@moat/contracts';
import { uuidFrom, type Broker } from '@moat/runtime';
import type { Delivery, DeliveryRepository } from '@moat/store';

/** The delivery.requested payload of a row's current attempt (the row is the truth). */
export function requestOf(d: Delivery): DeliveryRequestedPayload {
  return {
    deliveryId: d.id,
    attempt: d.attempt,
    messageId: d.messageId,
    tenantId: d.tenantId,
    store: { messageId: d.messageId, receivedAt: d.receivedAt.toISOString() },
    pool: d.pool,
    destination: d.destination,
    routes: d.routes,
    mailFrom: d.mailFrom,
    rcptTo: d.rcpts,
    prependHeaders: d.prependHeaders,
    size: d.size,
  };
}

/** Event ids derived from (delivery, attempt): a re-published request or result is the same event. */
export const requestEventId = (deliveryId: string, attempt: number) => uuidFrom(deliveryId, String(attempt), 'requested');
export const resultEventId = (deliveryId: string, attempt: number) => uuidFrom(deliveryId, String(attempt), 'result');

/**
 * Publishes attempts to their pool's sender queue: publish, wait for the broker's confirm, then
 * publishing → queued. A crash between the two leaves the row 'publishing' under a lease, and the
 * scheduler publishes it again; the sender claims each attempt once, so that is harmless.
 * Rows already 'queued' (first attempts, written so by the router; rows the scheduler re-publishes
 * after a long wait) are only published: there is no state to change.
 */
export class RequestPublisher {
  /** Pools whose sender queue this process has declared (once per pool and process). */
  private readonly declared = new Set<string>();

  constructor(
    private readonly broker: Broker,
    private readonly deliveries: DeliveryRepository,
  ) {}

  async publishAttempt(d: Delivery): Promise<void> {
    if (!this.declared.has(d.pool)) {
      // A queue must exist before the first publish to it, or the mandatory publish is returned
      // as unroutable when no sender of the pool has started yet.
      await this.broker.ensureQueue(queues.sender(d.pool));
      this.declared.add(d.pool);
    }
    await this.broker.publish(routingKeys.deliveryRequested(d.pool), this.broker.envelope('delivery.requested', requestOf(d), requestEventId(d.id, d.attempt)));
    if (d.status === 'publishing') await this.deliveries.markQueued(d.id, d.attempt);
  }

  /** Re-publishes an outcome a sender recorded but may not have published (see the scheduler). */
  async publishRecordedResult(result: DeliveryResultPayload): Promise<void> {
    await this.broker.publish(routingKeys.deliveryResult, this.broker.envelope('delivery.result', result, resultEventId(result.deliveryId, result.attempt)));
  }
}
