import { describe, expect, it } from 'vitest';
import { describeParked, eventIdentity, type RawMessage } from './parking.js';

function raw(body: string, headers: Record<string, unknown>, routingKey = 'message.event'): RawMessage {
  return {
    content: Buffer.from(body),
    fields: { deliveryTag: 1, redelivered: false, exchange: 'ns.parking', routingKey, consumerTag: 'c' },
    properties: { headers, type: undefined },
  } as unknown as RawMessage;
}

describe('describeParked', () => {
  it('when x-death names the queue and reason, then they are recorded without the namespace', () => {
    const msg = raw('{"id":"e1","type":"message.event","payload":{"messageId":"6f1c8a56-3b0e-4a58-9a0c-2a6f1f0f3f11"}}', {
      'x-death': [{ queue: 'ns.tracker', reason: 'delivery_limit', count: 1, exchange: 'ns.events', 'routing-keys': ['message.event'], time: 1732700000 }],
      'x-first-death-queue': 'ns.router',
      'x-first-death-reason': 'rejected',
    });
    const parked = describeParked(msg, 'ns');
    expect(parked).toMatchObject({
      sourceQueue: 'tracker',
      reason: 'delivery_limit',
      routingKey: 'message.event',
      eventId: 'e1',
      eventType: 'message.event',
      messageId: '6f1c8a56-3b0e-4a58-9a0c-2a6f1f0f3f11',
    });
  });

  it('when only x-first-death headers exist, then they name the source', () => {
    const parked = describeParked(raw('x', { 'x-first-death-queue': 'ns.sender.a', 'x-first-death-reason': 'rejected' }, 'delivery.requested.a'), 'ns');
    expect(parked).toMatchObject({ sourceQueue: 'sender.a', reason: 'rejected', routingKey: 'delivery.requested.a', eventId: null });
  });

  it('when headers hold byte strings and big integers, then they are stored as JSON-safe values', () => {
    const parked = describeParked(raw('x', { a: Buffer.from('bytes'), b: 2n ** 70n, c: 5n }), 'ns');
    expect(parked.headers).toEqual({ a: 'bytes', b: (2n ** 70n).toString(), c: 5 });
  });
});

describe('eventIdentity', () => {
  it('when the body is not JSON, then nothing is identified', () => {
    expect(eventIdentity(Buffer.from('{not json'))).toEqual({ eventId: null, eventType: null, messageId: null });
  });

  it('when the message id is not a UUID, then it is left out', () => {
    expect(eventIdentity(Buffer.from('{"id":"x","type":"t","payload":{"messageId":"nope"}}'))).toEqual({ eventId: 'x', eventType: 't', messageId: null });
  });
});
