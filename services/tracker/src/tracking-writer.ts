import type { AnyEvent } from '@moat/contracts';
import { isPostgresDataError, MicroBatcher, PermanentFailure, type Logger } from '@moat/runtime';
import type { TrackingRepository } from '@moat/store';

/**
 * Batches tracked events into one transaction per batch. A data error fails only the event
 * that caused it, and that event goes to parking at once (PermanentFailure) instead of burning
 * its delivery limit on retries.
 */
export function createTrackingWriter(repo: TrackingRepository, log: Logger, opts: { maxItems: number; maxDelayMs: number }): MicroBatcher<AnyEvent> {
  return new MicroBatcher<AnyEvent>({
    maxItems: opts.maxItems,
    maxDelayMs: opts.maxDelayMs,
    isolateOn: isPostgresDataError,
    write: async (events) => {
      try {
        await repo.record(events);
      } catch (err) {
        if (events.length === 1 && isPostgresDataError(err)) {
          const event = events[0]!;
          log.error({ err: (err as Error).message, eventId: event.id, type: event.type }, 'tracking write rejected by the database; parking the event');
          throw new PermanentFailure(`tracking write rejected: ${(err as Error).message}`, err);
        }
        throw err;
      }
    },
  });
}
