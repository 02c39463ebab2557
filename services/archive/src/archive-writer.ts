import { isPostgresDataError, MicroBatcher, PermanentFailure, type Logger } from '@moat/runtime';
import type { ArchiveEntryInput, ArchiveRepository } from '@moat/store';

export interface ArchiveWriter {
  /** Resolves once the entry's batch committed: true when it was new, false when already archived. */
  record(entry: ArchiveEntryInput): Promise<boolean>;
  /** Writes what is pending and waits for the writes in flight. */
  close(): Promise<void>;
}

/**
 * Archive entries grouped into one INSERT per batch (Postgres costs per statement; the consumer
 * holds up to `prefetch` messages, so under load their entries share a statement, and with
 * `maxDelayMs: 0` an idle archive writes at once). A handler awaits its own entry, so a message is
 * still acked only after its row is committed. When the database rejects a batch for its data,
 * each entry is retried alone so only the bad one fails, and that one is parked at once
 * (PermanentFailure) rather than burning its delivery limit on retries that cannot succeed.
 */
export function createArchiveWriter(repo: Pick<ArchiveRepository, 'recordMany'>, log: Logger, opts: { maxItems: number; maxDelayMs: number }): ArchiveWriter {
  const batcher = new MicroBatcher<ArchiveEntryInput, boolean>({
    maxItems: opts.maxItems,
    maxDelayMs: opts.maxDelayMs,
    isolateOn: isPostgresDataError,
    write: async (entries) => {
      try {
        return await repo.recordMany(entries);
      } catch (err) {
        if (entries.length === 1 && isPostgresDataError(err)) {
          log.error({ err: (err as Error).message, messageId: entries[0]!.messageId }, 'archive entry rejected by the database; parking the event');
          throw new PermanentFailure(`archive entry rejected: ${(err as Error).message}`, err);
        }
        throw err;
      }
    },
  });
  return { record: (entry) => batcher.add(entry), close: () => batcher.close() };
}
