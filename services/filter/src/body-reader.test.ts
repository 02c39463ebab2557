import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { StoreRef } from '@moat/contracts';
import { MoatError } from '@moat/runtime';
import type { BodyRead } from '@moat/store';
import { createBatchedBodyReader } from './body-reader.js';

const ref = (): StoreRef => ({ messageId: randomUUID(), receivedAt: new Date().toISOString() });

/** A store whose getMany records each call and answers from `bodies` (absent ids are NOT_FOUND). */
function fakeStore(bodies: Map<string, Buffer>) {
  const calls: StoreRef[][] = [];
  return {
    calls,
    async getMany(refs: readonly StoreRef[]): Promise<BodyRead[]> {
      calls.push([...refs]);
      return refs.map((r) => {
        const body = bodies.get(r.messageId);
        return body ? { body } : { error: new MoatError('NOT_FOUND', `${r.messageId} missing`, { permanent: true }) };
      });
    },
  };
}

describe('createBatchedBodyReader', () => {
  it('when several reads are pending at once, then they share one getMany call and each gets its own body', async () => {
    const refs = [ref(), ref(), ref(), ref(), ref()];
    const store = fakeStore(new Map(refs.map((r, i) => [r.messageId, Buffer.from(`body ${i}`)])));
    // One write at a time: the first read goes alone at once (idle: no added latency), the four
    // that arrived meanwhile go together in the next statement.
    const reader = createBatchedBodyReader(store, { maxItems: 32, maxDelayMs: 0, maxConcurrentWrites: 1 });
    const bodies = await Promise.all(refs.map((r) => reader.get(r)));
    expect(bodies.map((b) => b.toString())).toEqual(['body 0', 'body 1', 'body 2', 'body 3', 'body 4']);
    expect(store.calls.map((c) => c.length)).toEqual([1, 4]);
    await reader.close();
  });

  it('when one reference points nowhere, then only its read fails with NOT_FOUND and the others in its batch succeed', async () => {
    const present = [ref(), ref(), ref()];
    const missing = ref();
    const store = fakeStore(new Map(present.map((r) => [r.messageId, Buffer.from(r.messageId)])));
    const reader = createBatchedBodyReader(store, { maxItems: 32, maxDelayMs: 0, maxConcurrentWrites: 1 });
    const results = await Promise.allSettled([present[0]!, missing, present[1]!, present[2]!].map((r) => reader.get(r)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'NOT_FOUND' });
    expect(store.calls.some((c) => c.length > 1 && c.includes(missing))).toBe(true);
    await reader.close();
  });

  it('when the database is unreachable, then every read of the batch fails with the store error (retried)', async () => {
    const reader = createBatchedBodyReader(
      { getMany: async () => Promise.reject(new MoatError('STORE_READ_FAILED', 'connection refused')) },
      { maxItems: 32, maxDelayMs: 0, maxConcurrentWrites: 2 },
    );
    const results = await Promise.allSettled([ref(), ref(), ref()].map((r) => reader.get(r)));
    expect(results.every((r) => r.status === 'rejected' && (r.reason as MoatError).code === 'STORE_READ_FAILED')).toBe(true);
    await reader.close();
  });
});
