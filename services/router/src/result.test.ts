import { describe, expect, it } from 'vitest';
import type { DeliveryResultPayload, RecipientOutcome } from '@moat/contracts';
import { decideResult } from './result.js';

const policy = { retry: { baseMs: 1_000, maxMs: 10_000 }, lifetimeMs: 60_000 };
const now = new Date('2026-01-01T12:00:00Z');
const row = (over: Partial<{ rcpts: string[]; attempt: number; createdAt: Date; expiresAt: Date; status: 'sending' | 'held' }> = {}) => ({
  id: '11111111-1111-5111-8111-111111111111',
  rcpts: over.rcpts ?? ['a@x.example', 'b@x.example', 'c@x.example'],
  attempt: over.attempt ?? 1,
  status: over.status ?? ('sending' as const),
  createdAt: over.createdAt ?? new Date(now.getTime() - 1_000),
  expiresAt: over.expiresAt ?? null,
});
function result(outcomes: Record<string, RecipientOutcome>, error: string | null = null): DeliveryResultPayload {
  return {
    deliveryId: '11111111-1111-5111-8111-111111111111',
    attempt: 1,
    messageId: '22222222-2222-5222-8222-222222222222',
    tenantId: '33333333-3333-5333-8333-333333333333',
    pool: 'default',
    destination: 'mx:25/10',
    sourceIp: '127.0.0.1',
    remoteHost: 'mx:25',
    tls: false,
    startedAt: now.toISOString(),
    finishedAt: now.toISOString(),
    recipients: Object.entries(outcomes).map(([rcpt, outcome]) => ({
      rcpt,
      outcome,
      reply: outcome === 'delivered' ? { code: 250, enhanced: '2.0.0', text: 'ok' } : outcome === 'failed' ? { code: 550, enhanced: '5.1.1', text: 'unknown' } : { code: 450, enhanced: '4.2.0', text: 'later' },
    })),
    error,
  };
}

describe('decideResult', () => {
  it('when every recipient got a final fate, then the delivery is done with no recipients left', () => {
    const d = decideResult(row(), result({ 'a@x.example': 'delivered', 'b@x.example': 'failed', 'c@x.example': 'delivered' }), now, policy);
    expect(d.application).toMatchObject({ status: 'done', rcpts: [], nextAttempt: false });
    expect(d.events).toEqual([]);
  });

  it('when some recipients are deferred, then only they stay and a retry is scheduled after the back-off', () => {
    const d = decideResult(row(), result({ 'a@x.example': 'deferred', 'b@x.example': 'failed', 'c@x.example': 'delivered' }), now, policy);
    expect(d.application.status).toBe('deferred');
    expect(d.application.rcpts).toEqual(['a@x.example']);
    expect(d.application.nextAttempt).toBe(true);
    const delay = d.application.nextAttemptAt!.getTime() - now.getTime();
    expect(delay).toBeGreaterThanOrEqual(900);
    expect(delay).toBeLessThanOrEqual(1_100);
    expect(d.application.lastError).toBe('450 4.2.0 later');
    expect(d.events).toHaveLength(1);
    expect(d.events[0]).toMatchObject({ kind: 'retry_scheduled', rcpt: ['a@x.example'], detail: { attempt: 2, nextAttemptAt: d.application.nextAttemptAt!.toISOString() } });
  });

  it('when the same result is decided twice, then the events and the schedule are identical', () => {
    const r = result({ 'a@x.example': 'deferred', 'b@x.example': 'deferred', 'c@x.example': 'deferred' }, 'connection refused');
    expect(decideResult(row(), r, now, policy)).toEqual(decideResult(row(), r, now, policy));
  });

  it('when the delivery is older than the queue lifetime, then the deferred recipients expire and it is done', () => {
    const d = decideResult(row({ createdAt: new Date(now.getTime() - 61_000) }), result({ 'a@x.example': 'deferred', 'b@x.example': 'delivered', 'c@x.example': 'deferred' }, 'connection refused'), now, policy);
    expect(d.application).toMatchObject({ status: 'done', rcpts: ['a@x.example', 'c@x.example'], nextAttempt: false, lastError: 'connection refused' });
    expect(d.events).toEqual([expect.objectContaining({ kind: 'expired', rcpt: ['a@x.example', 'c@x.example'] })]);
  });

  it('when an operator extended the lifetime, then an old delivery is retried until the new expiry, and expires after it', () => {
    const old = { createdAt: new Date(now.getTime() - 61_000), expiresAt: new Date(now.getTime() + 3_600_000) };
    const deferred = result({ 'a@x.example': 'deferred', 'b@x.example': 'deferred', 'c@x.example': 'deferred' }, 'connection refused');
    expect(decideResult(row(old), deferred, now, policy).application.status).toBe('deferred');
    const later = new Date(now.getTime() + 3_600_001);
    expect(decideResult(row(old), deferred, later, policy).events).toEqual([expect.objectContaining({ kind: 'expired' })]);
  });

  it('when a recipient of the row is missing from the result, then it stays queued', () => {
    const d = decideResult(row(), result({ 'a@x.example': 'delivered', 'b@x.example': 'delivered' }), now, policy);
    expect(d.application.rcpts).toEqual(['c@x.example']);
    expect(d.application.status).toBe('deferred');
  });

  it('when the delivery is held, then the remaining recipients stay held', () => {
    const d = decideResult(row({ status: 'held' }), result({ 'a@x.example': 'deferred', 'b@x.example': 'delivered', 'c@x.example': 'delivered' }), now, policy);
    expect(d.application.status).toBe('held');
  });
});
