import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { PermanentFailure } from '@moat/runtime';
import type { ArchiveEntryInput } from '@moat/store';
import { createArchiveWriter } from './archive-writer.js';

const log = pino({ level: 'silent' });

function entry(subject: string): ArchiveEntryInput {
  return {
    messageId: randomUUID(),
    tenantId: randomUUID(),
    receivedAt: new Date().toISOString(),
    direction: 'inbound',
    mailFrom: 'a@sender.test',
    rcpts: ['b@customer.test'],
    fromHeader: null,
    toHeader: null,
    subject,
    dateHeader: null,
    messageIdHeader: null,
    size: 1,
    verdict: 'deliver',
  };
}

/** pg reports a NUL byte in text as SQLSTATE 22021 (character_not_in_repertoire). */
const nulError = () => Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' });

describe('createArchiveWriter', () => {
  it('when several entries are recorded at once, then they share one recordMany call and each gets its own result', async () => {
    const calls: ArchiveEntryInput[][] = [];
    const writer = createArchiveWriter(
      { recordMany: async (entries) => (calls.push([...entries]), entries.map((e) => e.subject !== 'old')) },
      log,
      { maxItems: 64, maxDelayMs: 0 },
    );
    const results = await Promise.all(['a', 'b', 'old', 'c', 'd'].map((s) => writer.record(entry(s))));
    expect(results).toEqual([true, true, false, true, true]);
    // The first goes alone at once (idle: no added latency); the rest, queued meanwhile, share the next statement.
    expect(calls.map((c) => c.length)).toEqual([1, 4]);
    await writer.close();
  });

  it('when one entry is bad data, then the others of its batch are recorded and only it fails, permanently (parked)', async () => {
    const recorded: string[] = [];
    const writer = createArchiveWriter(
      {
        recordMany: async (entries) => {
          if (entries.some((e) => e.subject?.includes('\0'))) throw nulError();
          recorded.push(...entries.map((e) => e.subject ?? ''));
          return entries.map(() => true);
        },
      },
      log,
      { maxItems: 64, maxDelayMs: 0 },
    );
    const results = await Promise.allSettled(['first', 'ok1', 'bad\0', 'ok2'].map((s) => writer.record(entry(s))));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(PermanentFailure);
    expect(recorded.sort()).toEqual(['first', 'ok1', 'ok2']);
    await writer.close();
  });

  it('when the database is unreachable, then every entry of the batch fails with the transient error (retried)', async () => {
    let calls = 0;
    const writer = createArchiveWriter({ recordMany: async () => (calls++, Promise.reject(new Error('connection terminated'))) }, log, { maxItems: 64, maxDelayMs: 0 });
    const results = await Promise.allSettled(['a', 'b', 'c'].map((s) => writer.record(entry(s))));
    expect(results.every((r) => r.status === 'rejected' && !(r.reason instanceof PermanentFailure))).toBe(true);
    // No per-item retries for an outage: one call for the first entry, one for the two behind it.
    expect(calls).toBe(2);
    await writer.close();
  });

});
