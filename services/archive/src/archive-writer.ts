import { MicroBatcher, PermanentFailure, type Logger } from '@moat/runtime';
import type { ArchiveEntryInput, ArchiveRepository } from '@moat/store';

/**
 * SQLSTATE classes that a retry cannot fix: 22 (data exception, e.g. a NUL byte in text) and
 * 23 (integrity constraint violation). Anything else (connection loss, deadlock, shutdown) is
 * transient and retried by the broker.
 */
export function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code);
}

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
    isolateOn: isDataError,
    write: async (entries) => {
      try {
        return await repo.recordMany(entries);
      } catch (err) {
        if (entries.length === 1 && isDataError(err)) {
          log.error({ err: (err as Error).message, messageId: entries[0]!.messageId }, 'archive entry rejected by the database; parking the event');
          throw new PermanentFailure(`archive entry rejected: ${(err as Error).message}`, err);
        }
        throw err;
      }
    },
  });
  return { record: (entry) => batcher.add(entry), close: () => batcher.close() };
}
