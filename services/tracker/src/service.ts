import { parking, queues } from '@moat/contracts';
import { connectDependencies, type Logger, type RunningService } from '@moat/runtime';
import { ensureDailyPartitions, ParkedRepository, TrackingRepository } from '@moat/store';
import type { Config } from './config.js';
import { describeParked } from './parking.js';
import { createTrackingWriter } from './tracking-writer.js';

const partitionIntervalMs = 60 * 60_000;

export interface TrackerService extends RunningService {
  adminPort: number;
}

/**
 * The tracker: every event of the tracker queue becomes a timeline row and moves the message's
 * tracked status; every dead letter of any queue becomes a parked_events row.
 */
export async function start(config: Config, log: Logger): Promise<TrackerService> {
  const deps = await connectDependencies('tracker', config, log);
  const { broker, pool } = deps;
  try {
    await ensureDailyPartitions(pool);
  } catch (err) {
    await deps.close();
    throw err;
  }
  const partitionTimer = setInterval(() => {
    ensureDailyPartitions(pool).catch((err: Error) => log.warn({ err: err.message }, 'creating daily partitions failed; the default partition takes the rows meanwhile'));
  }, partitionIntervalMs);
  partitionTimer.unref();

  const writer = createTrackingWriter(new TrackingRepository(pool), log, { maxItems: config.MOAT_TRACKER_BATCH_SIZE, maxDelayMs: config.MOAT_TRACKER_BATCH_WAIT_MS });
  const parked = new ParkedRepository(pool);

  // The handler resolves once the event's batch is committed; the broker acks only then.
  await broker.consume(queues.tracker, (delivery) => writer.add(delivery.event));
  await broker.consumeRaw(parking.queue, parking.prefetch, async (msg) => {
    const record = describeParked(msg, config.MOAT_NAMESPACE);
    const { id, inserted } = await parked.insert(record);
    if (inserted) log.warn({ parkedId: id, queue: record.sourceQueue, reason: record.reason, routingKey: record.routingKey, eventId: record.eventId }, 'message parked');
  });
  log.info({ batchSize: config.MOAT_TRACKER_BATCH_SIZE, batchWaitMs: config.MOAT_TRACKER_BATCH_WAIT_MS }, 'tracker consuming');

  let stopped: Promise<void> | null = null;
  return {
    adminPort: deps.adminPort,
    stop() {
      stopped ??= (async () => {
        clearInterval(partitionTimer);
        deps.health.markShuttingDown();
        // Cancel consumers and let the handlers in flight finish: their batches commit first.
        await broker.drain(config.MOAT_SHUTDOWN_TIMEOUT_MS);
        await writer.close();
        await deps.close();
      })();
      return stopped;
    },
  };
}
