import type { StoreRef } from '@moat/contracts';
import { isPostgresDataError, MicroBatcher } from '@moat/runtime';
import type { StoredMessage } from '@moat/store';
import type { IntakeDeps } from './message-intake.js';

type IntakeStore = IntakeDeps['store'];

/** The message store as the group commit uses it (MessageStore fits). */
export interface BatchMessageWriter {
  /** One statement and one commit for all of them; resolves once durable, refs in order. */
  putMany(messages: readonly StoredMessage[]): Promise<StoreRef[]>;
  delete(ref: StoreRef): Promise<void>;
}

export interface GroupCommitOptions {
  /** Bodies per INSERT at most. */
  maxItems: number;
  /** INSERTs in flight at once (each holds one pool connection). */
  maxConcurrentWrites: number;
  /** Body bytes per INSERT at most (a larger body goes alone): bounds one statement's memory. */
  maxBytes: number;
}

/**
 * The intake's store with group commit: concurrent sessions' bodies go into Postgres with one
 * INSERT and one commit (a commit costs the same for one row or thirty-two). `put` still resolves
 * for each session only once ITS batch committed, and rejects for every session of a failed
 * batch, so the durability promise (250 only after the body is committed and the event
 * confirmed) is the same as one INSERT per message. An idle store adds no delay
 * (`maxDelayMs: 0`): the first body is written at once, and what arrives meanwhile forms the
 * next batch.
 */
export class GroupCommitStore implements IntakeStore {
  private readonly batcher: MicroBatcher<StoredMessage, StoreRef>;

  constructor(
    private readonly store: BatchMessageWriter,
    opts: GroupCommitOptions,
  ) {
    this.batcher = new MicroBatcher<StoredMessage, StoreRef>({
      maxItems: opts.maxItems,
      maxDelayMs: 0,
      maxConcurrentWrites: opts.maxConcurrentWrites,
      weigh: (msg) => msg.raw.length,
      maxWeight: opts.maxBytes,
      write: (messages) => this.store.putMany(messages),
      isolateOn: isPostgresDataError,
    });
  }

  put(msg: StoredMessage): Promise<StoreRef> {
    return this.batcher.add(msg);
  }

  /** Undoing one session's body (its publish failed) is that session's own business: not batched. */
  delete(ref: StoreRef): Promise<void> {
    return this.store.delete(ref);
  }

  /** Bodies waiting for a write to start (what the next batch will hold). */
  get queued(): number {
    return this.batcher.size;
  }

  /** Writes what is still queued and waits for writes in flight (before the pool closes). */
  close(): Promise<void> {
    return this.batcher.close();
  }
}
