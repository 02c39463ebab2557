import type { MessageFilteredPayload } from '@moat/contracts';
import { uuidFrom } from '@moat/runtime';
import type { QuarantinedPayload } from '@moat/store';

/**
 * The id of a message's release event: one per message, whoever releases it and however often.
 * Two releases (a double click, two gateway replicas, a retried request) publish the same event;
 * the router routes a message once (delivery ids derive from the message id and destination) and
 * the tracker and archive dedupe on the id, so the customer gets the message once.
 */
export function releaseEventId(messageId: string): string {
  return uuidFrom(messageId, 'quarantine-release');
}

/** The id of the tracking event that reports a deletion from the quarantine. */
export function deletionEventId(messageId: string): string {
  return uuidFrom(messageId, 'quarantine-delete');
}

/** Header values come from API key names: printable ASCII on one line, so they can never add a header. */
function headerSafe(value: string): string {
  return value.replace(/[^\x20-\x7e]+/g, ' ').trim().slice(0, 200);
}

/**
 * The message.filtered payload that releases a quarantined message: the one the filter published,
 * with verdict deliver, the release recorded (for tracking) and in the reasons, and the
 * X-Moat-Verdict header the customer's server sees saying deliver, with an X-Moat-Released header
 * naming who released it. Only the prepended block changes; the body is never touched (and the
 * DKIM signature of outbound mail does not cover these headers). Deterministic for a given
 * (payload, by, at): a re-published release is the same event.
 */
export function releasedPayload(stored: QuarantinedPayload, by: string, at: string): MessageFilteredPayload {
  const verdictLine = /^X-Moat-Verdict:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n/im;
  const released = `X-Moat-Verdict: deliver\r\nX-Moat-Released: ${headerSafe(`${at} by ${by}`)}\r\n`;
  const prependHeaders = verdictLine.test(stored.prependHeaders) ? stored.prependHeaders.replace(verdictLine, released) : `${stored.prependHeaders}${released}`;
  return {
    ...stored,
    verdict: 'deliver',
    reasons: [...stored.reasons, `released from quarantine by ${by}`],
    prependHeaders,
    release: { by, at },
  };
}
