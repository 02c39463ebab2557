import type { DeliveryResultPayload, SmtpReply } from '@moat/contracts';
import { uuidFrom } from '@moat/runtime';
import type { Delivery, ResultApplication } from '@moat/store';
import { retryDelayMs, stableRandom, type RetryPolicy } from './backoff.js';

export interface ResultPolicy {
  retry: RetryPolicy;
  /** Deferred recipients of a delivery older than this expire instead of being retried. */
  lifetimeMs: number;
}

/** A message.event the router publishes because of a result (kind and recipients). */
export interface ResultEvent {
  /** Deterministic: processing the same result twice publishes the same event id. */
  id: string;
  kind: 'retry_scheduled' | 'expired';
  rcpt: string[];
  detail: Record<string, unknown>;
}

export interface ResultDecision {
  application: ResultApplication;
  /** Recipients that got their final fate (delivered or failed) in this attempt. */
  finished: string[];
  /** Recipients still without a final fate after this attempt. */
  remaining: string[];
  events: ResultEvent[];
}

export function formatReply(reply: SmtpReply): string {
  return [reply.code, reply.enhanced, reply.text].filter((p) => p !== null && p !== '').join(' ');
}

/**
 * What a delivery.result means for its row, as a pure function of the row, the result and the
 * clock. Delivered and failed recipients are final (they leave `rcpts`); deferred ones stay and
 * get another attempt after a back-off, unless the delivery has outlived the queue lifetime, in
 * which case they expire. The caller has already checked that the result is for the row's
 * current attempt.
 */
export function decideResult(
  row: Pick<Delivery, 'id' | 'rcpts' | 'attempt' | 'status' | 'createdAt'> & { expiresAt?: Date | null },
  result: DeliveryResultPayload,
  now: Date,
  policy: ResultPolicy,
): ResultDecision {
  const outcomeOf = new Map(result.recipients.map((r) => [r.rcpt, r]));
  const finished = row.rcpts.filter((rcpt) => {
    const outcome = outcomeOf.get(rcpt)?.outcome;
    return outcome === 'delivered' || outcome === 'failed';
  });
  // A recipient the result does not mention stays queued: nothing final happened to it.
  const remaining = row.rcpts.filter((rcpt) => !finished.includes(rcpt));
  const firstDeferred = result.recipients.find((r) => r.outcome === 'deferred' && remaining.includes(r.rcpt));
  const lastError = result.error ?? (firstDeferred ? formatReply(firstDeferred.reply) : null);

  if (remaining.length === 0) {
    return { application: { rcpts: [], status: 'done', nextAttempt: false, nextAttemptAt: null, lastError }, finished, remaining, events: [] };
  }
  const age = now.getTime() - row.createdAt.getTime();
  // An operator may have extended this delivery's lifetime (queue control).
  const expiresAt = row.expiresAt?.getTime() ?? row.createdAt.getTime() + policy.lifetimeMs;
  if (now.getTime() > expiresAt) {
    return {
      application: { rcpts: remaining, status: 'done', nextAttempt: false, nextAttemptAt: null, lastError },
      finished,
      remaining,
      events: [
        {
          id: uuidFrom(row.id, String(row.attempt), 'expired'),
          kind: 'expired',
          rcpt: remaining,
          detail: { deliveryId: row.id, attempts: row.attempt, queuedForMs: age, lastError },
        },
      ],
    };
  }
  const delay = retryDelayMs(row.attempt, policy.retry, stableRandom(row.id, String(row.attempt), 'jitter'));
  const nextAttemptAt = new Date(now.getTime() + delay);
  return {
    // A held delivery stays held (an operator put it there); it keeps its schedule for release.
    application: { rcpts: remaining, status: row.status === 'held' ? 'held' : 'deferred', nextAttempt: true, nextAttemptAt, lastError },
    finished,
    remaining,
    events: [
      {
        id: uuidFrom(row.id, String(row.attempt), 'retry_scheduled'),
        kind: 'retry_scheduled',
        rcpt: remaining,
        detail: { deliveryId: row.id, attempt: row.attempt + 1, nextAttemptAt: nextAttemptAt.toISOString(), lastError },
      },
    ],
  };
}
