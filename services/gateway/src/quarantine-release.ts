import { routingKeys, type MessageFilteredPayload } from '@moat/contracts';
import { uuidFrom, type Broker } from '@moat/runtime';
import type { AuditLog, QuarantinedPayload, QuarantineRecord, QuarantineRepository, QuarantineTransition } from '@moat/store';
import { conflict, notFound } from './problem.js';

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

/** The entry a transition left, or the problem it is: 404 unknown, 409 when its state forbids the action. */
export function settled(messageId: string, t: QuarantineTransition | null, action: 'released' | 'deleted'): QuarantineRecord {
  if (!t) throw notFound(`quarantined message ${messageId} not found`);
  if (t.outcome === 'refused') {
    throw conflict(
      t.entry.state === 'released'
        ? `message ${messageId} was released by ${t.entry.stateChangedBy ?? 'someone'}: it cannot be ${action} any more`
        : `message ${messageId} was ${t.entry.state}${t.entry.stateChangedBy ? ` by ${t.entry.stateChangedBy}` : ''}: it cannot be ${action}`,
    );
  }
  return t.entry;
}

export interface ReleaseDependencies {
  quarantine: Pick<QuarantineRepository, 'release'>;
  audit: Pick<AuditLog, 'record'>;
  broker: Pick<Broker, 'publish' | 'envelope'>;
}

/**
 * Releases a quarantined message, the one way every caller does it (the API, digest links): moves
 * it to released (once, whatever the concurrency) and publishes its release. A message already
 * released is published again with the same event id and payload: harmless (delivered once), and
 * it finishes a release whose publish was lost (the state changed, then the broker failed), so
 * retrying a failed request is always the right thing to do. Who may release what is the
 * caller's check, made before. Audited with `actor`.
 */
export async function releaseFromQuarantine(
  deps: ReleaseDependencies,
  record: Pick<QuarantineRecord, 'messageId' | 'tenantId' | 'category'>,
  actor: string,
  auditDetail: Record<string, unknown> = {},
): Promise<{ entry: QuarantineRecord; alreadyDone: boolean }> {
  const t = await deps.quarantine.release(record.messageId, actor);
  const entry = settled(record.messageId, t, 'released');
  if (!entry.payload) throw conflict(`message ${record.messageId} has nothing left to release`);
  const at = entry.stateChangedAt ?? new Date().toISOString();
  const payload = releasedPayload(entry.payload, entry.stateChangedBy ?? actor, at);
  // The same envelope every time, its time included: tracking orders a recipient's statuses by
  // event time, so a release re-published after the delivery (a late second click) must not
  // carry a later time that would put `released` back over `delivered`.
  const event = { ...deps.broker.envelope('message.filtered', payload, releaseEventId(record.messageId)), occurredAt: at };
  await deps.broker.publish(routingKeys.messageFiltered, event);
  const alreadyDone = t!.outcome === 'unchanged';
  await deps.audit.record({ actor, action: 'quarantine.release', target: record.messageId, detail: { tenantId: record.tenantId, category: record.category, alreadyDone, ...auditDetail } });
  return { entry, alreadyDone };
}
