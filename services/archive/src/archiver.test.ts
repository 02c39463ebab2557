import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AnyEvent } from '@moat/contracts';
import { PermanentFailure } from '@moat/runtime';
import type { ArchiveEntryInput, QuarantineInput } from '@moat/store';
import { Archiver, archiveEntryFor, quarantineEntryFor } from './archiver.js';

const log = pino({ level: 'silent' });
const noQuarantine = { record: async () => true };

function filteredEvent(): AnyEvent {
  const messageId = randomUUID();
  const receivedAt = new Date().toISOString();
  return {
    v: 1,
    id: randomUUID(),
    type: 'message.filtered',
    occurredAt: receivedAt,
    producer: 'filter',
    payload: {
      messageId,
      tenantId: randomUUID(),
      direction: 'outbound',
      store: { messageId, receivedAt },
      mailFrom: '',
      rcptTo: ['x@remote.test', 'y@remote.test'],
      client: { ip: '127.0.0.1', helo: 'h', ptr: null, tls: null },
      size: 5,
      sha256: 'b'.repeat(64),
      prependHeaders: '',
      receivedAt,
      verdict: 'quarantine',
      score: 7,
      reasons: ['virus: Eicar-Test-Signature'],
      checks: [{ check: 'virus', result: 'fail', reason: 'virus found: Eicar-Test-Signature' }],
      preview: { keyId: 'p1', wrappedKey: 'd3JhcHBlZA==', iv: 'aXY=', tag: 'dGFn', ciphertext: 'c2VhbGVk' },
      authResults: 'mx; none',
      headers: { from: null, to: null, subject: 'S', date: null, messageIdHeader: null },
    },
  };
}

describe('Archiver', () => {
  it('when a filtered event is handled, then its envelope, headers and verdict are recorded as they are', async () => {
    const recorded: ArchiveEntryInput[] = [];
    const archiver = new Archiver({ quarantine: noQuarantine, quarantineRetentionDays: 30, archive: { record: async (e) => (recorded.push(e), true) }, log });
    await archiver.handle(filteredEvent());
    expect(recorded).toEqual([
      expect.objectContaining({ direction: 'outbound', mailFrom: '', rcpts: ['x@remote.test', 'y@remote.test'], subject: 'S', fromHeader: null, verdict: 'quarantine', size: 5 }),
    ]);
  });

  it('when a split message arrives part by part, then each part gives the same archive row (every recipient, the whole verdict) and the quarantined part alone is quarantined', () => {
    const base = filteredEvent() as Extract<AnyEvent, { type: 'message.filtered' }>;
    const parts = [
      { verdict: 'deliver' as const, rcptTo: ['x@remote.test'] },
      { verdict: 'quarantine' as const, rcptTo: ['y@remote.test'] },
    ];
    const delivered = { ...base, payload: { ...base.payload, verdict: 'deliver' as const, rcptTo: ['x@remote.test'], split: { part: 'deliver' as const, parts } } };
    const kept = { ...base, payload: { ...base.payload, rcptTo: ['y@remote.test'], split: { part: 'quarantine' as const, parts } } };
    expect(archiveEntryFor(delivered)).toEqual(archiveEntryFor(kept));
    expect(archiveEntryFor(kept)).toMatchObject({ rcpts: ['x@remote.test', 'y@remote.test'], verdict: 'deliver' });
    const q: QuarantineInput = quarantineEntryFor(kept, 30);
    expect([q.rcpts, q.payload.rcptTo, q.payload.split?.part]).toEqual([['y@remote.test'], ['y@remote.test'], 'quarantine']);
  });

  it('when the entry already existed, then the redelivery completes without error and records the same entry', async () => {
    const recorded: ArchiveEntryInput[] = [];
    const archiver = new Archiver({ quarantine: noQuarantine, quarantineRetentionDays: 30, archive: { record: async (e) => (recorded.push(e), recorded.length === 1) }, log });
    const event = filteredEvent();
    await archiver.handle(event);
    await archiver.handle(event);
    expect(recorded).toHaveLength(2);
    expect(recorded[1]).toEqual(recorded[0]);
  });

  it('when the verdict is quarantine, then a quarantine row records category, reasons, recipients, retention, the payload without the preview, and the sealed preview', async () => {
    const quarantined: QuarantineInput[] = [];
    const archiver = new Archiver({ archive: { record: async () => true }, quarantine: { record: async (q) => (quarantined.push(q), true) }, quarantineRetentionDays: 14, log });
    const event = filteredEvent();
    await archiver.handle(event);
    expect(quarantined).toHaveLength(1);
    const q = quarantined[0]!;
    expect(q).toMatchObject({ category: 'virus', reasons: ['virus: Eicar-Test-Signature'], rcpts: ['x@remote.test', 'y@remote.test'], retentionDays: 14, score: 7 });
    expect(q.preview).toEqual(event.type === 'message.filtered' ? event.payload.preview : null);
    expect(q.payload).not.toHaveProperty('preview');
    expect(q.payload.verdict).toBe('quarantine');
  });

  it('when the verdict is deliver (a release included), then no quarantine row is written', async () => {
    const quarantined: QuarantineInput[] = [];
    const archiver = new Archiver({ archive: { record: async () => true }, quarantine: { record: async (q) => (quarantined.push(q), true) }, quarantineRetentionDays: 14, log });
    const event = filteredEvent();
    if (event.type !== 'message.filtered') throw new Error('unreachable');
    await archiver.handle({ ...event, payload: { ...event.payload, verdict: 'deliver', release: { by: 'a', at: event.occurredAt } } });
    expect(quarantined).toHaveLength(0);
  });

  it('when the event is not message.filtered, then it fails permanently (parked)', async () => {
    const archiver = new Archiver({ quarantine: noQuarantine, quarantineRetentionDays: 30, archive: { record: async () => true }, log });
    const event = { ...filteredEvent(), type: 'message.accepted' } as AnyEvent;
    await expect(archiver.handle(event)).rejects.toBeInstanceOf(PermanentFailure);
  });

  it('when the database fails, then the error propagates for a retry', async () => {
    const archiver = new Archiver({ quarantine: noQuarantine, quarantineRetentionDays: 30, archive: { record: async () => Promise.reject(new Error('connection terminated')) }, log });
    await expect(archiver.handle(filteredEvent())).rejects.toThrow('connection terminated');
  });
});
