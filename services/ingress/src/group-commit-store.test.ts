import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { StoreRef } from '@moat/contracts';
import { MoatError } from '@moat/runtime';
import type { StoredMessage } from '@moat/store';
import { GroupCommitStore, type BatchMessageWriter } from './group-commit-store.js';

function message(): StoredMessage {
  return { id: randomUUID(), tenantId: randomUUID(), receivedAt: new Date(), sha256: 'a'.repeat(64), raw: Buffer.from('x') };
}

const refOf = (m: StoredMessage): StoreRef => ({ messageId: m.id, receivedAt: m.receivedAt.toISOString() });

/** A writer that records batch sizes and fails batches holding a poison id the way `fail` says. */
function writer(fail: (batch: readonly StoredMessage[]) => Error | null) {
  const batches: number[] = [];
  const w: BatchMessageWriter = {
    async putMany(batch) {
      batches.push(batch.length);
      await new Promise((resolve) => setImmediate(resolve));
      const err = fail(batch);
      if (err) throw err;
      return batch.map(refOf);
    },
    async delete() {},
  };
  return { w, batches };
}

describe('GroupCommitStore', () => {
  it('when puts arrive while a write runs, then they go together in the next write and each gets its own reference', async () => {
    const { w, batches } = writer(() => null);
    const store = new GroupCommitStore(w, { maxItems: 32, maxConcurrentWrites: 1, maxBytes: 4 * 1024 * 1024 });
    const msgs = Array.from({ length: 5 }, message);
    const refs = await Promise.all(msgs.map((m) => store.put(m)));
    expect(refs).toEqual(msgs.map(refOf));
    expect(batches).toEqual([1, 4]);
  });

  it('when a batch fails for an outage, then every put of it rejects', async () => {
    const { w, batches } = writer(() => new MoatError('STORE_WRITE_FAILED', 'connection refused', { cause: Object.assign(new Error('ECONNREFUSED'), { code: 'ECONNREFUSED' }) }));
    const store = new GroupCommitStore(w, { maxItems: 32, maxConcurrentWrites: 1, maxBytes: 4 * 1024 * 1024 });
    const results = await Promise.allSettled(Array.from({ length: 4 }, () => store.put(message())));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
    expect(batches).toEqual([1, 3]);
  });

  it('when a batch fails because of one row’s data, then the others are written alone and only that one rejects', async () => {
    const poison = message();
    const { w } = writer((batch) =>
      batch.some((m) => m.id === poison.id) ? new MoatError('STORE_WRITE_FAILED', 'invalid input', { cause: Object.assign(new Error('invalid input syntax'), { code: '22P02' }) }) : null,
    );
    const store = new GroupCommitStore(w, { maxItems: 32, maxConcurrentWrites: 1, maxBytes: 4 * 1024 * 1024 });
    const first = store.put(message());
    const others = [message(), poison, message()];
    const results = await Promise.allSettled([first, ...others.map((m) => store.put(m))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
  });

  it('when closed with puts queued, then they are written before close resolves', async () => {
    const { w } = writer(() => null);
    const store = new GroupCommitStore(w, { maxItems: 32, maxConcurrentWrites: 1, maxBytes: 4 * 1024 * 1024 });
    const puts = [store.put(message()), store.put(message()), store.put(message())];
    await store.close();
    expect(store.queued).toBe(0);
    await expect(Promise.all(puts)).resolves.toHaveLength(3);
  });
});
