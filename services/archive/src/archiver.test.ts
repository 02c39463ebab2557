import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AnyEvent } from '@moat/contracts';
import { PermanentFailure } from '@moat/runtime';
import type { ArchiveEntryInput } from '@moat/store';
import { Archiver } from './archiver.js';

const log = pino({ level: 'silent' });

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
      reasons: ['r'],
      checks: [],
      authResults: 'mx; none',
      headers: { from: null, to: null, subject: 'S', date: null, messageIdHeader: null },
    },
  };
}

describe('Archiver', () => {
  it('when a filtered event is handled, then its envelope, headers and verdict are recorded as they are', async () => {
    const recorded: ArchiveEntryInput[] = [];
    const archiver = new Archiver({ archive: { record: async (e) => (recorded.push(e), true) }, log });
    await archiver.handle(filteredEvent());
    expect(recorded).toEqual([
      expect.objectContaining({ direction: 'outbound', mailFrom: '', rcpts: ['x@remote.test', 'y@remote.test'], subject: 'S', fromHeader: null, verdict: 'quarantine', size: 5 }),
    ]);
  });

  it('when the entry already existed, then the redelivery completes without error and records the same entry', async () => {
    const recorded: ArchiveEntryInput[] = [];
    const archiver = new Archiver({ archive: { record: async (e) => (recorded.push(e), recorded.length === 1) }, log });
    const event = filteredEvent();
    await archiver.handle(event);
    await archiver.handle(event);
    expect(recorded).toHaveLength(2);
    expect(recorded[1]).toEqual(recorded[0]);
  });

  it('when the event is not message.filtered, then it fails permanently (parked)', async () => {
    const archiver = new Archiver({ archive: { record: async () => true }, log });
    const event = { ...filteredEvent(), type: 'message.accepted' } as AnyEvent;
    await expect(archiver.handle(event)).rejects.toBeInstanceOf(PermanentFailure);
  });

  it('when the database fails, then the error propagates for a retry', async () => {
    const archiver = new Archiver({ archive: { record: async () => Promise.reject(new Error('connection terminated')) }, log });
    await expect(archiver.handle(filteredEvent())).rejects.toThrow('connection terminated');
  });
});
