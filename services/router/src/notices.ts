import type { DeliveryResultPayload, SmtpReply, TrackingKind } from '@moat/contracts';
import { uuidFrom } from '@moat/runtime';
import type { Delivery } from '@moat/store';
import { recipientDomain } from './destinations.js';
import type { DsnRecipient } from './dsn.js';
import type { ResultDecision } from './result.js';

export interface NoticePolicy {
  /** A delivery still deferred this long after it was routed gets one delay warning; 0: never. */
  delayWarningMs: number;
  /** The queue lifetime (Will-Retry-Until of a delay warning). */
  lifetimeMs: number;
}

/** A DSN to send because of one delivery.result. */
export interface Notice {
  action: 'failed' | 'delayed';
  /**
   * The DSN's message id, derived from what caused it: a redelivered result (a router that died
   * between the DSN and the row update) derives the same id, and the DSN's store row and
   * delivery rows, keyed by it, are written once. A bounce is per attempt (each attempt can fail
   * recipients at most once); a delay warning per delivery (it is sent once).
   */
  dsnMessageId: string;
  recipients: DsnRecipient[];
  /** When the DSN is dated and stored: the attempt's end, the same on every redelivery. */
  at: Date;
  /** Delay warnings: when the queue gives up on the delivery. */
  willRetryUntil: Date | null;
}

/** A message.event the router publishes because of a result. */
export interface FateEvent {
  /** Deterministic: processing the same result twice publishes the same event id. */
  id: string;
  kind: TrackingKind;
  rcpt: string[];
  detail: Record<string, unknown>;
}

/** The host of a `host:port` label (`[2001:db8::1]:25` → `[2001:db8::1]`). */
export function hostOfLabel(label: string | null): string | null {
  if (!label) return null;
  const m = /^(.*):\d+$/.exec(label);
  return m ? m[1]! : label;
}

const noReply = (result: DeliveryResultPayload): SmtpReply => ({ code: null, enhanced: null, text: result.error ?? 'no reply was received for this recipient' });

/**
 * Whether a result calls for a DSN, and for whom (pure). None for the null sender: a DSN is itself
 * sent with MAIL FROM:<> (RFC 5321 §4.5.5, RFC 3464 §2), so bounces of bounces cannot happen;
 * nor for a sender without a domain (nowhere to send it).
 * - Recipients that failed in this attempt (5xx, or a definitive DNS answer) and recipients that
 *   expired with it: one bounce (`failed`) covering them all.
 * - Otherwise, when recipients stay deferred and the delivery has waited `delayWarningMs` since
 *   it was routed: a delay warning (`delayed`). Only one per delivery (see Notice.dsnMessageId);
 *   an attempt that bounces recipients leaves the warning to the next attempt.
 */
export function noticeFor(
  row: Pick<Delivery, 'id' | 'attempt' | 'mailFrom' | 'createdAt'>,
  result: DeliveryResultPayload,
  decision: Pick<ResultDecision, 'finished' | 'remaining' | 'application' | 'events'>,
  now: Date,
  policy: NoticePolicy,
): Notice | null {
  if (row.mailFrom === '') return null;
  // A sender address without a domain names no place a DSN could be delivered to.
  if (recipientDomain(row.mailFrom) === null) return null;
  const at = new Date(result.finishedAt);
  const remoteMta = hostOfLabel(result.remoteHost);
  const outcomeOf = new Map(result.recipients.map((r) => [r.rcpt, r]));
  const entry = (rcpt: string, fate: DsnRecipient['fate']): DsnRecipient => {
    const reply = outcomeOf.get(rcpt)?.reply ?? noReply(result);
    return { rcpt, fate, reply, remoteMta: reply.code !== null ? remoteMta : null, lastAttemptAt: at };
  };
  const failed = decision.finished.filter((rcpt) => outcomeOf.get(rcpt)?.outcome === 'failed').map((rcpt) => entry(rcpt, 'failed'));
  const expired = decision.events.some((e) => e.kind === 'expired') ? decision.remaining.map((rcpt) => entry(rcpt, 'expired')) : [];
  if (failed.length + expired.length > 0) {
    return { action: 'failed', dsnMessageId: uuidFrom(row.id, String(row.attempt), 'dsn', 'failed'), recipients: [...failed, ...expired], at, willRetryUntil: null };
  }
  const waited = now.getTime() - row.createdAt.getTime();
  if (decision.application.nextAttempt && decision.remaining.length > 0 && policy.delayWarningMs > 0 && waited >= policy.delayWarningMs) {
    return {
      action: 'delayed',
      dsnMessageId: uuidFrom(row.id, 'dsn', 'delayed'),
      recipients: decision.remaining.map((rcpt) => entry(rcpt, 'delayed')),
      at,
      willRetryUntil: new Date(row.createdAt.getTime() + policy.lifetimeMs),
    };
  }
  return null;
}

/**
 * The tracking events of a result once its DSN (if any) exists (pure). With a bounce, each
 * reported recipient moves to `bounced` with its reply and the DSN's id (an expired one is
 * bounced instead of expired: the bounce is its fate); `failed` recipients were already recorded
 * so by the delivery.result itself. A delay warning is noted on the retry event.
 */
export function fateEvents(row: Pick<Delivery, 'id' | 'attempt'>, decision: Pick<ResultDecision, 'events'>, notice: Notice | null): FateEvent[] {
  if (!notice) return decision.events;
  if (notice.action === 'delayed') {
    return decision.events.map((e) => (e.kind === 'retry_scheduled' ? { ...e, detail: { ...e.detail, delayWarningMessageId: notice.dsnMessageId } } : e));
  }
  const expired = decision.events.find((e) => e.kind === 'expired');
  const bounced: FateEvent[] = notice.recipients.map((r) => ({
    id: uuidFrom(row.id, String(row.attempt), 'bounced', r.rcpt),
    kind: 'bounced',
    rcpt: [r.rcpt],
    detail: {
      deliveryId: row.id,
      attempt: row.attempt,
      reason: r.fate,
      reply: r.reply,
      remoteMta: r.remoteMta,
      dsnMessageId: notice.dsnMessageId,
      ...(r.fate === 'expired' && expired ? { queuedForMs: expired.detail.queuedForMs, lastError: expired.detail.lastError } : {}),
    },
  }));
  return [...decision.events.filter((e) => e.kind !== 'expired'), ...bounced];
}
