import type { StoreRef } from '@moat/contracts';
import { MicroBatcher } from '@moat/runtime';
import type { BodyRead, MessageStore } from '@moat/store';

export interface BatchedBodyReader {
  /** The body behind a reference; rejects with that reference's own error (e.g. NOT_FOUND). */
  get(ref: StoreRef): Promise<Buffer>;
  /** Reads what is pending and waits for the reads in flight. */
  close(): Promise<void>;
}

export interface BodyReaderOptions {
  maxItems: number;
  maxDelayMs: number;
  maxConcurrentWrites: number;
}

/**
 * Message-store reads grouped into one SELECT per batch: Postgres costs per statement, not per
 * byte, and the consumer holds up to `prefetch` messages, so under load the reads of the messages
 * in flight share a statement. With `maxDelayMs: 0` an idle filter reads at once. A reference the
 * store does not have fails only its own caller (NOT_FOUND, parked); a database outage fails the
 * whole batch, each caller retrying after the broker's back-off.
 */
export function createBatchedBodyReader(store: Pick<MessageStore, 'getMany'>, opts: BodyReaderOptions): BatchedBodyReader {
  const batcher = new MicroBatcher<StoreRef, BodyRead>({
    maxItems: opts.maxItems,
    maxDelayMs: opts.maxDelayMs,
    maxConcurrentWrites: opts.maxConcurrentWrites,
    write: (refs) => store.getMany(refs),
  });
  return {
    async get(ref) {
      const read = await batcher.add(ref);
      if ('error' in read) throw read.error;
      return read.body;
    },
    close: () => batcher.close(),
  };
}
