import { describe, expect, it } from 'vitest';
import type { AnyEvent } from '@moat/contracts';
import { projectEvents } from './tracking.js';

const messageId = '6f1c8a56-3b0e-4a58-9a0c-2a6f1f0f3f11';
const tenantId = '0b7e3c1e-8f3a-4a5b-9c6d-1e2f3a4b5c6d';
const base = Date.parse('2024-11-27T10:00:00.000Z');
const at = (s: number) => new Date(base + s * 1000).toISOString();
const reply = (code: number, text: string) => ({ code, enhanced: null, text });

function result(id: string, s: number, outcome: 'delivered' | 'deferred' | 'failed', text: string): AnyEvent {
  return {
    v: 1,
    id,
    type: 'delivery.result',
    occurredAt: at(s),
    producer: 'sender',
    payload: {
      deliveryId: '1c0d7e2a-4b5f-4c3d-8e9f-0a1b2c3d4e5f',
      attempt: 1,
      messageId,
      tenantId,
      pool: 'a',
      destination: 'd',
      sourceIp: null,
      remoteHost: null,
      tls: false,
      startedAt: at(s),
      finishedAt: at(s),
      recipients: [{ rcpt: 'bob@x.example', outcome, reply: reply(outcome === 'delivered' ? 250 : outcome === 'deferred' ? 451 : 550, text) }],
      error: null,
    },
  };
}

function requested(id: string, s: number): AnyEvent {
  return {
    v: 1,
    id,
    type: 'delivery.requested',
    occurredAt: at(s),
    producer: 'router',
    payload: {
      deliveryId: '1c0d7e2a-4b5f-4c3d-8e9f-0a1b2c3d4e5f',
      attempt: 2,
      messageId,
      tenantId,
      store: { messageId, receivedAt: at(0) },
      pool: 'a',
      destination: 'd',
      routes: [{ host: 'mx.x.example', port: 25, priority: 0 }],
      mailFrom: 'a@y.example',
      rcptTo: ['bob@x.example'],
      prependHeaders: '',
      size: 10,
    },
  };
}

function filtered(id: string, s: number, verdict: 'deliver' | 'quarantine', release?: { by: string; at: string }): AnyEvent {
  return {
    v: 1,
    id,
    type: 'message.filtered',
    occurredAt: at(s),
    producer: release ? 'gateway' : 'filter',
    payload: {
      messageId,
      tenantId,
      direction: 'inbound',
      store: { messageId, receivedAt: at(0) },
      mailFrom: 'a@y.example',
      rcptTo: ['bob@x.example'],
      client: { ip: '127.0.0.1', helo: 'h', ptr: null, tls: null },
      size: 10,
      sha256: 'a'.repeat(64),
      prependHeaders: '',
      receivedAt: at(0),
      verdict,
      score: 0,
      reasons: release ? ['virus: X', `released from quarantine by ${release.by}`] : ['virus: X'],
      checks: [],
      authResults: 'mx; none',
      headers: { from: null, to: null, subject: 's', date: null, messageIdHeader: null },
      ...(release ? { release } : {}),
    },
  };
}

describe('projectEvents', () => {
  it('when a final and a later in-flight update meet in one batch, then the final one wins whatever the order', () => {
    const delivered = result('00000000-0000-4000-8000-000000000001', 5, 'delivered', '250 ok');
    const queued = requested('00000000-0000-4000-8000-000000000002', 9);
    for (const order of [[delivered, queued], [queued, delivered]]) {
      const batch = projectEvents(order);
      expect(batch.recipients).toEqual([expect.objectContaining({ rcpt: 'bob@x.example', status: 'delivered', reply: reply(250, '250 ok') })]);
    }
  });

  it('when two updates of equal rank meet, then the later one wins and a reply-less winner keeps the latest reply', () => {
    const deferred = result('00000000-0000-4000-8000-000000000003', 5, 'deferred', '451 later');
    const queued = requested('00000000-0000-4000-8000-000000000004', 9);
    for (const order of [[deferred, queued], [queued, deferred]]) {
      const batch = projectEvents(order);
      expect(batch.recipients).toEqual([expect.objectContaining({ status: 'queued', at: at(9), reply: reply(451, '451 later') })]);
    }
  });

  it('when a quarantined message is released and then delivered, then it shows released, then delivered (never back to quarantined or queued)', () => {
    const quarantine = filtered('00000000-0000-4000-8000-000000000001', 1, 'quarantine');
    const release = filtered('00000000-0000-4000-8000-000000000002', 10, 'deliver', { by: 'admin/k1', at: at(10) });
    const queued = requested('00000000-0000-4000-8000-000000000003', 11);
    const delivered = result('00000000-0000-4000-8000-000000000004', 12, 'delivered', 'ok');
    expect(projectEvents([quarantine]).recipients.map((r) => r.status)).toEqual(['quarantined']);
    // Any arrival order gives the same end state.
    expect(projectEvents([quarantine, release, queued]).recipients.map((r) => r.status)).toEqual(['released']);
    expect(projectEvents([release, quarantine, delivered, queued]).recipients.map((r) => r.status)).toEqual(['delivered']);
    const timeline = projectEvents([quarantine, release]).events;
    expect(timeline.map((e) => e.type)).toEqual(['filtered', 'released']);
    expect(timeline[1]!.detail).toMatchObject({ verdict: 'deliver', release: { by: 'admin/k1' } });
  });

  it('when the same event appears twice, then it yields one timeline row (the earliest copy)', () => {
    const first = result('00000000-0000-4000-8000-000000000005', 5, 'delivered', '250 ok');
    const copy = { ...first, occurredAt: at(7) } as AnyEvent;
    const batch = projectEvents([copy, first, first]);
    expect(batch.events).toHaveLength(1);
    expect(batch.events[0]!.at).toBe(at(5));
  });

  it('when Moat generated a message (a DSN), then its routed event makes a full outbound message row that a later request does not replace', () => {
    const generated: AnyEvent = {
      v: 1,
      id: '00000000-0000-4000-8000-000000000007',
      type: 'message.event',
      occurredAt: at(2),
      producer: 'router',
      payload: {
        messageId,
        tenantId,
        kind: 'routed',
        rcpt: [],
        detail: { dsnFor: '9a1c8a56-3b0e-4a58-9a0c-2a6f1f0f3f11' },
        generated: { direction: 'outbound', mailFrom: '', rcptTo: ['bob@x.example'], subject: 'Undelivered Mail Returned to Sender', size: 1234, sha256: 'b'.repeat(64), receivedAt: at(1) },
      },
    };
    for (const order of [[generated, requested('00000000-0000-4000-8000-000000000008', 3)], [requested('00000000-0000-4000-8000-000000000008', 3), generated]]) {
      const batch = projectEvents(order);
      expect(batch.messages).toEqual([
        expect.objectContaining({ messageId, tenantId, direction: 'outbound', mailFrom: '', subject: 'Undelivered Mail Returned to Sender', size: 1234, receivedAt: at(1) }),
      ]);
      expect(batch.placeholders).toEqual([]);
      expect(batch.recipients).toEqual([expect.objectContaining({ rcpt: 'bob@x.example', status: 'queued' })]);
    }
  });

  it('when ingress refused a transaction at SMTP time, then its rejected events make the message row and each recipient shows its own refusal', () => {
    const refused = { direction: 'inbound' as const, mailFrom: 'spammer@bad.example', client: { ip: '192.0.2.9', helo: 'bad.example' }, receivedAt: at(1) };
    const rejected = (id: string, rcpt: string, r: { code: number; enhanced: string; text: string }): AnyEvent => ({
      v: 1,
      id,
      type: 'message.event',
      occurredAt: at(2),
      producer: 'ingress',
      payload: { messageId, tenantId, kind: 'rejected', rcpt: [rcpt], detail: { check: 'x', reply: r }, refused },
    });
    const unknown = { code: 550, enhanced: '5.1.1', text: 'User unknown' };
    const greylisted = { code: 451, enhanced: '4.7.1', text: 'Greylisted, please try again later' };
    const batch = projectEvents([rejected('00000000-0000-4000-8000-000000000011', 'nobody@acme.example', unknown), rejected('00000000-0000-4000-8000-000000000012', 'alice@acme.example', greylisted)]);
    expect(batch.messages).toEqual([
      expect.objectContaining({ messageId, tenantId, direction: 'inbound', mailFrom: 'spammer@bad.example', clientIp: '192.0.2.9', helo: 'bad.example', size: null, receivedAt: at(1) }),
    ]);
    expect(batch.recipients).toEqual([
      expect.objectContaining({ rcpt: 'alice@acme.example', status: 'rejected', reply: greylisted }),
      expect.objectContaining({ rcpt: 'nobody@acme.example', status: 'rejected', reply: unknown }),
    ]);
  });

  it('when a failed recipient is then bounced, then it ends bounced with the reply the bounce event carries', () => {
    const failed = result('00000000-0000-4000-8000-000000000009', 5, 'failed', 'User unknown');
    const bounced: AnyEvent = {
      v: 1,
      id: '00000000-0000-4000-8000-00000000000a',
      type: 'message.event',
      occurredAt: at(6),
      producer: 'router',
      payload: { messageId, tenantId, kind: 'bounced', rcpt: ['bob@x.example'], detail: { reason: 'failed', reply: { code: 550, enhanced: '5.1.1', text: 'User unknown' } } },
    };
    for (const order of [[failed, bounced], [bounced, failed]]) {
      expect(projectEvents(order).recipients).toEqual([expect.objectContaining({ status: 'bounced', reply: { code: 550, enhanced: '5.1.1', text: 'User unknown' } })]);
    }
  });

  it('when only a delivery request is known, then it contributes a placeholder message row', () => {
    const batch = projectEvents([requested('00000000-0000-4000-8000-000000000006', 3)]);
    expect(batch.messages).toEqual([]);
    expect(batch.placeholders).toEqual([expect.objectContaining({ messageId, tenantId, mailFrom: 'a@y.example', receivedAt: at(0) })]);
  });
});
