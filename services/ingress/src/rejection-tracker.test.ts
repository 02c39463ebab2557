import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { MessageEventPayload } from '@moat/contracts';
import { messageEventPayload } from '@moat/contracts';
import { RejectionTracker, rejectionEvents, trackedReply, type Refusal } from './rejection-tracker.js';
import { replies } from './replies.js';

const log = pino({ level: 'silent' });
const T = '11111111-1111-4111-8111-111111111111';
const tx1 = '22222222-2222-4222-8222-222222222222';
const tx2 = '33333333-3333-4333-8333-333333333333';
const at = new Date('2026-01-01T00:00:00Z');

function refusal(over: Partial<Refusal> = {}): Refusal {
  return {
    transactionId: tx1,
    tenantId: T,
    rcpt: 'nobody@acme.example',
    check: 'recipient-verification',
    why: 'unknown-user',
    reply: replies.userUnknown('nobody@acme.example'),
    client: { ip: '192.0.2.9', helo: 'mx.sender.example' },
    mailFrom: 'someone@sender.example',
    at,
    ...over,
  };
}

describe('rejectionEvents', () => {
  it('when a transaction has refusals with different replies, then there is one valid rejected event per reply, each with its recipients', () => {
    const grey = replies.greylisted();
    const events = rejectionEvents([
      refusal(),
      refusal({ rcpt: 'ghost@acme.example', reply: replies.userUnknown('nobody@acme.example') }),
      refusal({ rcpt: 'alice@acme.example', check: 'greylisting', why: 'first', reply: grey }),
      refusal({ transactionId: tx2, check: 'dnsbl', why: 'listed', zone: 'bl.example', reply: replies.dnsblListed('192.0.2.9', 'bl.example') }),
    ]);
    expect(events.map((e) => [e.messageId, e.rcpt, (e.detail.reply as { code: number }).code])).toEqual([
      [tx1, ['nobody@acme.example', 'ghost@acme.example'], 550],
      [tx1, ['alice@acme.example'], 451],
      [tx2, ['nobody@acme.example'], 554],
    ]);
    expect(events[2]!.detail).toEqual({
      stage: 'smtp',
      check: 'dnsbl',
      why: 'listed',
      zone: 'bl.example',
      clientIp: '192.0.2.9',
      reply: { code: 554, enhanced: '5.7.1', text: 'Service unavailable; client host [192.0.2.9] blocked using bl.example' },
    });
    for (const e of events) expect(messageEventPayload.parse(e)).toMatchObject({ kind: 'rejected', refused: { direction: 'inbound', mailFrom: 'someone@sender.example', receivedAt: at.toISOString() } });
  });

  it('when the client sent an over-long sender, recipient or HELO, then the event is clipped to the contract and still valid', () => {
    const long = `${'x'.repeat(400)}@sender.example`;
    const [event] = rejectionEvents([refusal({ mailFrom: long, rcpt: `${'y'.repeat(400)}@acme.example`, client: { ip: '192.0.2.9', helo: 'h'.repeat(1000) } })]);
    const parsed = messageEventPayload.parse(event);
    expect([parsed.refused!.mailFrom.length, parsed.rcpt[0]!.length, parsed.refused!.client.helo.length]).toEqual([320, 320, 255]);
  });

  it('when a reply is turned into tracking form, then code, enhanced status and text are separate', () => {
    expect(trackedReply(replies.greylisted())).toEqual({ code: 451, enhanced: '4.7.1', text: 'Greylisted, please try again later' });
  });
});

describe('RejectionTracker', () => {
  it('when refusals exceed the budget of a flush, then the rest are only counted and the next flush has budget again', async () => {
    const published: MessageEventPayload[] = [];
    const tracker = new RejectionTracker(async (p) => void published.push(p), { flushMs: 60_000, maxEventsPerFlush: 2 }, log);
    const ids = ['44444444-4444-4444-8444-44444444444', '55555555-5555-4555-8555-55555555555'];
    for (let i = 0; i < 5; i++) tracker.record(refusal({ transactionId: `${ids[0]}${i}` }));
    // A recipient joining an event already pending needs no budget.
    tracker.record(refusal({ transactionId: `${ids[0]}0`, rcpt: 'ghost@acme.example' }));
    await tracker.flush();
    expect(published.map((p) => [p.messageId, p.rcpt])).toEqual([
      [`${ids[0]}0`, ['nobody@acme.example', 'ghost@acme.example']],
      [`${ids[0]}1`, ['nobody@acme.example']],
    ]);
    tracker.record(refusal({ transactionId: `${ids[1]}0` }));
    await tracker.close();
    expect(published.map((p) => p.messageId)).toEqual([`${ids[0]}0`, `${ids[0]}1`, `${ids[1]}0`]);
  });

  it('when publishing fails, then the flush still settles (tracking is best effort; the client has its reply)', async () => {
    const tracker = new RejectionTracker(async () => Promise.reject(new Error('broker down')), { flushMs: 60_000, maxEventsPerFlush: 10 }, log);
    tracker.record(refusal());
    await expect(tracker.close()).resolves.toBeUndefined();
  });
});
