import { queues } from '@moat/contracts';
import { connectDependencies, type Logger, type RunningService } from '@moat/runtime';
import { ArchiveRepository, QuarantineRepository } from '@moat/store';
import { createArchiveWriter } from './archive-writer.js';
import { Archiver } from './archiver.js';
import type { Config } from './config.js';
import { startQuarantineSweeper } from './quarantine-sweeper.js';

export interface ArchiveService extends RunningService {
  /** The admin port actually bound (-1 when off). */
  adminPort: number;
}

export async function start(config: Config, log: Logger): Promise<ArchiveService> {
  const deps = await connectDependencies('archive', config, log);
  // One INSERT for the entries of the messages in flight (group commit); each handler awaits its own.
  const writer = createArchiveWriter(new ArchiveRepository(deps.pool), log, { maxItems: 64, maxDelayMs: 0 });
  const quarantine = new QuarantineRepository(deps.pool);
  const archiver = new Archiver({ archive: writer, quarantine, quarantineRetentionDays: config.MOAT_QUARANTINE_RETENTION_DAYS, log });
  try {
    await deps.broker.consume(queues.archive, (delivery) => archiver.handle(delivery.event));
  } catch (err) {
    await writer.close();
    await deps.close();
    throw err;
  }
  const stopSweeper = startQuarantineSweeper({ quarantine, intervalMs: config.MOAT_QUARANTINE_SWEEP_INTERVAL_MS, log });
  log.info({ quarantineRetentionDays: config.MOAT_QUARANTINE_RETENTION_DAYS }, 'archive consuming');

  let stopping: Promise<void> | null = null;
  return {
    adminPort: deps.adminPort,
    stop() {
      // Stop taking messages, let the ones in flight commit and ack, write any entry still pending
      // (a handler cut off by the drain bound may wait on one), then close the connections.
      stopping ??= (async () => {
        await deps.broker.drain(config.MOAT_SHUTDOWN_TIMEOUT_MS);
        await stopSweeper();
        await writer.close();
        await deps.close();
      })();
      return stopping;
    },
  };
}
