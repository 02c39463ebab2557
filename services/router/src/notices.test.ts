import { describe, expect, it } from 'vitest';
import type { DeliveryResultPayload, RecipientResult } from '@moat/contracts';
import { fateEvents, hostOfLabel, noticeFor, type NoticePolicy } from './notices.js';
import { decideResult, type ResultPolicy } from './result.js';

const created = new Date('2024-03-05T09:00:00Z');
const row = (over: Partial<{ mailFrom: string; rcpts: string[]; attempt: number }> = {}) => ({
  id: '1c0d7e2a-4b5f-4c3d-8e9f-0a1b2c3d4e5f',
  attempt: over.attempt ?? 1,
  status: 'sending' as const,
  rcpts: over.rcpts ?? ['ok@c.example', 'nobody@c.example', 'later@c.example'],
  mailFrom: over.mailFrom ?? 'alice@sender.example',
  createdAt: created,
});
const resultPolicy: ResultPolicy = { retry: { baseMs: 300_000, maxMs: 3_600_000 }, lifetimeMs: 5 * 86_400_000 };
const noticePolicy: NoticePolicy = { delayWarningMs: 4 * 3_600_000, lifetimeMs: resultPolicy.lifetimeMs };

function result(recipients: RecipientResult[], attempt = 1, finishedAt = '2024-03-05T09:01:00.000Z'): DeliveryResultPayload {
  return {
    deliveryId: row().id,
    attempt,
    messageId: '6f1c8a56-3b0e-4a58-9a0c-2a6f1f0f3f11',
    tenantId: '0b7e3c1e-8f3a-4a5b-9c6d-1e2f3a4b5c6d',
    pool: 'default',
    destination: 'mail.c.example:25/10',
    sourceIp: '127.0.0.1',
    remoteHost: 'mail.c.example:25',
    tls: false,
    startedAt: '2024-03-05T09:00:59.000Z',
    finishedAt,
    recipients,
    error: null,
  };
}
const ok: RecipientResult = { rcpt: 'ok@c.example', outcome: 'delivered', reply: { code: 250, enhanced: '2.0.0', text: 'queued' } };
const nobody: RecipientResult = { rcpt: 'nobody@c.example', outcome: 'failed', reply: { code: 550, enhanced: '5.1.1', text: 'User unknown' } };
const later: RecipientResult = { rcpt: 'later@c.example', outcome: 'deferred', reply: { code: 451, enhanced: '4.3.0', text: 'try later' } };

describe('noticeFor', () => {
  it('when one recipient fails with 5xx, then a bounce covers it alone, with the reply and the host that gave it', () => {
    const r = result([ok, nobody, later]);
    const now = new Date('2024-03-05T09:01:01Z');
    const notice = noticeFor(row(), r, decideResult(row(), r, now, resultPolicy), now, noticePolicy);
    expect(notice).toMatchObject({ action: 'failed', at: new Date('2024-03-05T09:01:00Z'), willRetryUntil: null });
    expect(notice!.recipients).toEqual([{ rcpt: 'nobody@c.example', fate: 'failed', reply: nobody.reply, remoteMta: 'mail.c.example', lastAttemptAt: new Date('2024-03-05T09:01:00Z') }]);
  });

  it('when the same result is seen twice, then the DSN id is the same; another attempt gets another id', () => {
    const r = result([nobody], 1);
    const now = new Date('2024-03-05T09:01:01Z');
    const a = noticeFor(row(), r, decideResult(row(), r, now, resultPolicy), now, noticePolicy);
    const b = noticeFor(row(), r, decideResult(row(), r, new Date('2024-03-05T09:05:00Z'), resultPolicy), new Date('2024-03-05T09:05:00Z'), noticePolicy);
    const r2 = result([nobody], 2);
    const c = noticeFor(row({ attempt: 2 }), r2, decideResult(row({ attempt: 2 }), r2, now, resultPolicy), now, noticePolicy);
    expect(a!.dsnMessageId).toBe(b!.dsnMessageId);
    expect(c!.dsnMessageId).not.toBe(a!.dsnMessageId);
  });

  it('when the envelope sender is the null sender (or has no domain), then there is no DSN', () => {
    const r = result([nobody]);
    const now = new Date('2024-03-05T09:01:01Z');
    expect(noticeFor(row({ mailFrom: '' }), r, decideResult(row({ mailFrom: '' }), r, now, resultPolicy), now, noticePolicy)).toBeNull();
    expect(noticeFor(row({ mailFrom: 'postmaster' }), r, decideResult(row({ mailFrom: 'postmaster' }), r, now, resultPolicy), now, noticePolicy)).toBeNull();
  });

  it('when deferred recipients outlive the queue, then they are bounced as expired together with any 5xx of the same attempt', () => {
    const r = result([nobody, later], 9, '2024-03-10T09:30:00.000Z');
    const now = new Date('2024-03-10T09:30:01Z');
    const late = row({ attempt: 9, rcpts: ['nobody@c.example', 'later@c.example'] });
    const decision = decideResult(late, r, now, resultPolicy);
    const notice = noticeFor(late, r, decision, now, noticePolicy);
    expect(notice!.action).toBe('failed');
    expect(notice!.recipients.map((x) => [x.rcpt, x.fate])).toEqual([
      ['nobody@c.example', 'failed'],
      ['later@c.example', 'expired'],
    ]);
  });

  it('when a delivery is still deferred past the warning time, then a delay warning is due, with one id per delivery', () => {
    const early = new Date('2024-03-05T12:59:00Z');
    const late = new Date('2024-03-05T13:00:00Z');
    const r = result([later], 5);
    expect(noticeFor(row({ rcpts: ['later@c.example'], attempt: 5 }), r, decideResult(row({ rcpts: ['later@c.example'], attempt: 5 }), r, early, resultPolicy), early, noticePolicy)).toBeNull();
    const warn = noticeFor(row({ rcpts: ['later@c.example'], attempt: 5 }), r, decideResult(row({ rcpts: ['later@c.example'], attempt: 5 }), r, late, resultPolicy), late, noticePolicy);
    expect(warn).toMatchObject({ action: 'delayed', willRetryUntil: new Date('2024-03-10T09:00:00Z') });
    expect(warn!.recipients).toEqual([expect.objectContaining({ rcpt: 'later@c.example', fate: 'delayed', reply: later.reply })]);
    const r6 = result([later], 6);
    const next = noticeFor(row({ rcpts: ['later@c.example'], attempt: 6 }), r6, decideResult(row({ rcpts: ['later@c.example'], attempt: 6 }), r6, late, resultPolicy), late, noticePolicy);
    expect(next!.dsnMessageId).toBe(warn!.dsnMessageId);
  });

  it('when delay warnings are off, then a long-deferred delivery gets none', () => {
    const late = new Date('2024-03-06T09:00:00Z');
    const r = result([later], 5);
    const decision = decideResult(row({ rcpts: ['later@c.example'], attempt: 5 }), r, late, resultPolicy);
    expect(noticeFor(row({ rcpts: ['later@c.example'], attempt: 5 }), r, decision, late, { ...noticePolicy, delayWarningMs: 0 })).toBeNull();
  });

  it('when no server replied (connection refused), then the DSN names no remote host', () => {
    const refused: RecipientResult = { rcpt: 'later@c.example', outcome: 'deferred', reply: { code: null, enhanced: null, text: 'connect ECONNREFUSED' } };
    const r = { ...result([refused], 9, '2024-03-10T09:30:00.000Z'), remoteHost: 'mail.c.example:25' };
    const now = new Date('2024-03-10T09:30:01Z');
    const notice = noticeFor(row({ rcpts: ['later@c.example'], attempt: 9 }), r, decideResult(row({ rcpts: ['later@c.example'], attempt: 9 }), r, now, resultPolicy), now, noticePolicy);
    expect(notice!.recipients[0]).toMatchObject({ fate: 'expired', remoteMta: null });
  });
});

describe('fateEvents', () => {
  it('when a bounce was issued, then each reported recipient gets a bounced event with its reply and the DSN id, and expired is replaced', () => {
    const r = result([nobody, later], 9, '2024-03-10T09:30:00.000Z');
    const now = new Date('2024-03-10T09:30:01Z');
    const late = row({ attempt: 9, rcpts: ['nobody@c.example', 'later@c.example'] });
    const decision = decideResult(late, r, now, resultPolicy);
    const notice = noticeFor(late, r, decision, now, noticePolicy)!;
    const events = fateEvents(late, decision, notice);
    expect(events.map((e) => [e.kind, e.rcpt])).toEqual([
      ['bounced', ['nobody@c.example']],
      ['bounced', ['later@c.example']],
    ]);
    expect(events[0]!.detail).toMatchObject({ reason: 'failed', reply: nobody.reply, dsnMessageId: notice.dsnMessageId, remoteMta: 'mail.c.example' });
    expect(events[1]!.detail).toMatchObject({ reason: 'expired', reply: later.reply, queuedForMs: expect.any(Number) });
    expect(new Set(events.map((e) => e.id)).size).toBe(2);
    expect(fateEvents(late, decision, notice).map((e) => e.id)).toEqual(events.map((e) => e.id));
  });

  it('when there is no DSN (null sender), then the result’s own events are published unchanged', () => {
    const r = result([later], 9, '2024-03-10T09:30:00.000Z');
    const now = new Date('2024-03-10T09:30:01Z');
    const decision = decideResult(row({ rcpts: ['later@c.example'], attempt: 9, mailFrom: '' }), r, now, resultPolicy);
    expect(fateEvents(row({ attempt: 9 }), decision, null)).toEqual(decision.events);
    expect(decision.events.map((e) => e.kind)).toEqual(['expired']);
  });

  it('when a delay warning was issued, then the retry event names it', () => {
    const late = new Date('2024-03-05T13:00:00Z');
    const r = result([later], 5);
    const decision = decideResult(row({ rcpts: ['later@c.example'], attempt: 5 }), r, late, resultPolicy);
    const notice = noticeFor(row({ rcpts: ['later@c.example'], attempt: 5 }), r, decision, late, noticePolicy)!;
    expect(fateEvents(row({ attempt: 5 }), decision, notice)).toEqual([expect.objectContaining({ kind: 'retry_scheduled', detail: expect.objectContaining({ delayWarningMessageId: notice.dsnMessageId }) })]);
  });
});

describe('hostOfLabel', () => {
  it('when a label has a port, then it is cut off', () => {
    expect(hostOfLabel('mail.c.example:25')).toBe('mail.c.example');
    expect(hostOfLabel('[2001:db8::1]:2525')).toBe('[2001:db8::1]');
    expect(hostOfLabel(null)).toBeNull();
  });
});
