import { queues, routingKeys, type DeliveryRequestedPayload, type DeliveryResultPayload, type Route } from '@moat/contracts';
import { uuidFrom, type Broker, type Logger } from '@moat/runtime';
import type { Delivery, DeliveryRepository } from '@moat/store';
import type { MailRoutes } from './mx.js';
import { unresolvedDomain, unresolvedResult } from './unresolved.js';

/**
 * The delivery.requested payload of a row's current attempt (the row is the truth; a row routed
 * by an MX that is resolved per attempt gets that attempt's routes).
 */
export function requestOf(d: Delivery, routes: Route[] = d.routes): DeliveryRequestedPayload {
  return {
    deliveryId: d.id,
    attempt: d.attempt,
    messageId: d.messageId,
    tenantId: d.tenantId,
    store: { messageId: d.messageId, receivedAt: d.receivedAt.toISOString() },
    pool: d.pool,
    destination: d.destination,
    routes,
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
export interface UnresolvedRouting {
  /** The MX lookup (the router's, with its cache). */
  mailRoutes: (domain: string) => Promise<MailRoutes>;
  /** How long the router holds an attempt it reports itself (as a sender's claim). */
  claimLeaseMs: number;
  log: Logger;
}

export class RequestPublisher {
  /** Pools whose sender queue this process has declared (once per pool and process). */
  private readonly declared = new Set<string>();

  constructor(
    private readonly broker: Broker,
    private readonly deliveries: DeliveryRepository,
    private readonly unresolved: UnresolvedRouting | null = null,
    /** The pool of each attempt (pool-chooser.ts); absent: the pool the row was routed to. */
    private readonly choosePool: ((destination: string) => Promise<string>) | null = null,
  ) {}

  async publishAttempt(d: Delivery): Promise<void> {
    const domain = unresolvedDomain(d.destination);
    if (domain !== null) return this.publishUnresolved(d, domain);
    return this.publishRequest(d, d.routes);
  }

  /**
   * An attempt of a row whose MX is resolved per attempt (unresolved.ts). With an answer it is
   * published with those routes. Without one the router takes the part of a sender: it claims
   * the attempt (so no sender can take it), records the outcome on the row, then publishes it as
   * the attempt's delivery.result. Killed in between, the claim's lease runs out and the
   * scheduler either re-reports the recorded outcome or moves on to the next attempt, as it does
   * for a sender that died.
   */
  private async publishUnresolved(d: Delivery, domain: string): Promise<void> {
    if (!this.unresolved) throw new Error(`delivery ${d.id} is routed by MX (${d.destination}), but this router resolves no MX`);
    const answer = await this.unresolved.mailRoutes(domain);
    if (answer.kind === 'routes') return this.publishRequest(d, answer.routes);
    const claimed = await this.deliveries.claim(d.id, d.attempt, this.unresolved.claimLeaseMs);
    if (!claimed) return;
    const result = unresolvedResult(claimed, answer, new Date());
    if (!(await this.deliveries.recordOutcome(d.id, d.attempt, result))) return;
    this.unresolved.log.debug({ deliveryId: d.id, attempt: d.attempt, domain, outcome: answer.kind, reply: answer.reply.text }, 'MX not resolved; the attempt ends here');
    await this.publishRecordedResult(result);
  }

  private async publishRequest(row: Delivery, routes: Route[]): Promise<void> {
    // The pool is chosen per attempt: a retry fails over when its pool has no live sender left or
    // the destination refused it. (A sender claims by delivery id, whichever queue it came from.)
    const d = this.choosePool ? { ...row, pool: await this.choosePool(row.destination) } : row;
    if (!this.declared.has(d.pool)) {
      // A queue must exist before the first publish to it, or the mandatory publish is returned
      // as unroutable when no sender of the pool has started yet.
      await this.broker.ensureQueue(queues.sender(d.pool));
      this.declared.add(d.pool);
    }
    await this.broker.publish(routingKeys.deliveryRequested(d.pool), this.broker.envelope('delivery.requested', requestOf(d, routes), requestEventId(d.id, d.attempt)));
    if (d.status === 'publishing') await this.deliveries.markQueued(d.id, d.attempt);
  }

  /** Re-publishes an outcome a sender recorded but may not have published (see the scheduler). */
  async publishRecordedResult(result: DeliveryResultPayload): Promise<void> {
    await this.broker.publish(routingKeys.deliveryResult, this.broker.envelope('delivery.result', result, resultEventId(result.deliveryId, result.attempt)));
  }
}
