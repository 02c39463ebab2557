import type { DeliveryResultPayload } from '@moat/contracts';
import type { Delivery } from '@moat/store';
import type { MailRoutes } from './mx.js';
import { formatReply } from './result.js';

/**
 * Recipients whose domain's MX could not be resolved when the message was routed (DNS failing,
 * or a negative answer) still get a delivery row, so that they share the retry schedule, the
 * queue lifetime and the DSN of every other delivery: its destination is `mx:<domain>` and it
 * has no routes. Each attempt of such a row resolves the MX again (RequestPublisher): with an
 * answer the attempt is published to the senders with those routes; without one, the router
 * itself reports the attempt as a delivery.result (deferred for a temporary DNS failure, failed
 * for a definitive one), recorded on the row first exactly as a sender records its outcome.
 */
const prefix = 'mx:';

/** The destination key of a row whose routes are resolved at each attempt. */
export function unresolvedDestination(domain: string): string {
  return `${prefix}${domain}`;
}

/** The domain of such a destination, or null for a destination with routes. */
export function unresolvedDomain(destination: string): string | null {
  // Route-set keys are `host:port/priority,…`: never `mx:` followed by a name without a port.
  return destination.startsWith(prefix) ? destination.slice(prefix.length) : null;
}

/** The result of an attempt that ended at the MX lookup: every recipient gets the lookup's reply. */
export function unresolvedResult(d: Pick<Delivery, 'id' | 'attempt' | 'messageId' | 'tenantId' | 'pool' | 'destination' | 'rcpts'>, failure: Exclude<MailRoutes, { kind: 'routes' }>, at: Date): DeliveryResultPayload {
  const outcome = failure.kind === 'permanent' ? 'failed' : 'deferred';
  return {
    deliveryId: d.id,
    attempt: d.attempt,
    messageId: d.messageId,
    tenantId: d.tenantId,
    pool: d.pool,
    destination: d.destination,
    sourceIp: null,
    remoteHost: null,
    tls: false,
    startedAt: at.toISOString(),
    finishedAt: at.toISOString(),
    recipients: d.rcpts.map((rcpt) => ({ rcpt, outcome, reply: failure.reply })),
    error: formatReply(failure.reply),
  };
}
