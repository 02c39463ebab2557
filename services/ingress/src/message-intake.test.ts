import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { AnyEvent, StoreRef } from '@moat/contracts';
import { MoatError } from '@moat/runtime';
import type { StoredMessage } from '@moat/store';
import { commitMessage, type Intake, type IntakeDeps } from './message-intake.js';

/** An in-memory store and broker that record what the intake did to them. */
function fakes(opts: { publishFails?: boolean; deleteFails?: boolean; putFails?: boolean } = {}) {
  const stored = new Map<string, StoredMessage>();
  const published: AnyEvent[] = [];
  const errors: string[] = [];
  const log = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
  const deps: IntakeDeps = {
    store: {
      async put(msg) {
        if (opts.putFails) throw new MoatError('STORE_WRITE_FAILED', 'database down');
        stored.set(msg.id, msg);
        return { messageId: msg.id, receivedAt: msg.receivedAt.toISOString() };
      },
      async delete(ref: StoreRef) {
        if (opts.deleteFails) throw new Error('database gone too');
        stored.delete(ref.messageId);
      },
    },
    broker: {
      envelope: (type, payload, id = randomUUID()) => ({ v: 1, id, type, occurredAt: new Date().toISOString(), producer: 'test', payload }) as AnyEvent,
      async publish(_key, event) {
        if (opts.publishFails) throw new MoatError('PUBLISH_UNROUTABLE', 'returned');
        published.push(event);
      },
    },
    log,
  };
  return { deps, stored, published, errors };
}

function intake(): Intake {
  const id = randomUUID();
  const receivedAt = new Date();
  return {
    message: { id, tenantId: randomUUID(), receivedAt, sha256: 'a'.repeat(64), raw: Buffer.from('Subject: x\r\n\r\nbody\r\n') },
    payload: {
      messageId: id,
      tenantId: randomUUID(),
      direction: 'inbound',
      mailFrom: 'a@sender.example',
      rcptTo: ['b@example.com'],
      client: { ip: '192.0.2.1', helo: 'sender.example', ptr: null, tls: null },
      size: 21,
      sha256: 'a'.repeat(64),
      prependHeaders: 'Received: x\r\n',
      receivedAt: receivedAt.toISOString(),
    },
    eventId: randomUUID(),
  };
}

describe('commitMessage', () => {
  it('when store and broker succeed, then the event carries the store reference and the chosen id', async () => {
    const f = fakes();
    const i = intake();
    const payload = await commitMessage(f.deps, i, new AbortController().signal);
    expect(payload.store).toEqual({ messageId: i.message.id, receivedAt: i.message.receivedAt.toISOString() });
    expect(f.published.map((e) => e.id)).toEqual([i.eventId]);
    expect(f.stored.has(i.message.id)).toBe(true);
  });

  it('when the publish fails, then the stored body is deleted and the failure reaches the caller', async () => {
    const f = fakes({ publishFails: true });
    const i = intake();
    await expect(commitMessage(f.deps, i, new AbortController().signal)).rejects.toMatchObject({ code: 'PUBLISH_UNROUTABLE' });
    expect(f.stored.size).toBe(0);
  });

  it('when the publish fails and so does the delete, then the orphan is logged and the publish failure still reaches the caller', async () => {
    const f = fakes({ publishFails: true, deleteFails: true });
    await expect(commitMessage(f.deps, intake(), new AbortController().signal)).rejects.toMatchObject({ code: 'PUBLISH_UNROUTABLE' });
    expect(f.errors.join('')).toContain('orphan');
  });

  it('when the store write fails, then nothing is published', async () => {
    const f = fakes({ putFails: true });
    await expect(commitMessage(f.deps, intake(), new AbortController().signal)).rejects.toMatchObject({ code: 'STORE_WRITE_FAILED' });
    expect(f.published).toEqual([]);
  });

  it('when the deadline passed during the store write, then the body is deleted and nothing is published', async () => {
    const f = fakes();
    const deadline = new AbortController();
    deadline.abort();
    await expect(commitMessage(f.deps, intake(), deadline.signal)).rejects.toMatchObject({ code: 'HANDLER_TIMEOUT' });
    expect(f.published).toEqual([]);
    expect(f.stored.size).toBe(0);
  });
});
