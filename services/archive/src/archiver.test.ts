import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AnyEvent } from '@moat/contracts';
import { PermanentFailure } from '@moat/runtime';
import type { ArchiveEntryInput } from '@moat/store';
import { Archiver, archivedEventId } from './archiver.js';

const log = pino({ level: 'silent' });

function fakeBroker() {
  const published: Array<{ key: string; event: AnyEvent }> = [];
  return {
    published,
    envelope: (type: string, payload: unknown, id = randomUUID()) => ({ v: 1, id, type, occurredAt: new Date().toISOString(), producer: 'test', payload }) as AnyEvent,
    publish: async (key: string, event: AnyEvent) => {
      published.push({ key, event });
    },
  };
}

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
    const broker = fakeBroker();
    const archiver = new Archiver({ archive: { record: async (e) => (recorded.push(e), true) }, broker, log });
    const event = filteredEvent();
    await archiver.handle(event);
    expect(recorded).toEqual([
      expect.objectContaining({ direction: 'outbound', mailFrom: '', rcpts: ['x@remote.test', 'y@remote.test'], subject: 'S', fromHeader: null, verdict: 'quarantine', size: 5 }),
    ]);
    expect(broker.published).toHaveLength(1);
    expect(broker.published[0]!.key).toBe('message.event');
    expect(broker.published[0]!.event.id).toBe(archivedEventId(event.id));
  });

  it('when the entry already existed, then the tracking event is published again with the same id', async () => {
    const broker = fakeBroker();
    const archiver = new Archiver({ archive: { record: async () => false }, broker, log });
    const event = filteredEvent();
    await archiver.handle(event);
    await archiver.handle(event);
    expect(broker.published.map((p) => p.event.id)).toEqual([archivedEventId(event.id), archivedEventId(event.id)]);
  });

  it('when the event is not message.filtered, then it fails permanently (parked)', async () => {
    const archiver = new Archiver({ archive: { record: async () => true }, broker: fakeBroker(), log });
    const event = { ...filteredEvent(), type: 'message.accepted' } as AnyEvent;
    await expect(archiver.handle(event)).rejects.toBeInstanceOf(PermanentFailure);
  });

  it('when the database fails, then the error propagates for a retry and nothing is published', async () => {
    const broker = fakeBroker();
    const archiver = new Archiver({ archive: { record: async () => Promise.reject(new Error('connection terminated')) }, broker, log });
    await expect(archiver.handle(filteredEvent())).rejects.toThrow('connection terminated');
    expect(broker.published).toEqual([]);
  });
});
