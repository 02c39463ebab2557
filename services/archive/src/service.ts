import { queues } from '@moat/contracts';
import { connectDependencies, type Logger, type RunningService } from '@moat/runtime';
import { ArchiveRepository } from '@moat/store';
import { Archiver } from './archiver.js';
import type { Config } from './config.js';

export interface ArchiveService extends RunningService {
  /** The admin port actually bound (-1 when off). */
  adminPort: number;
}

export async function start(config: Config, log: Logger): Promise<ArchiveService> {
  const deps = await connectDependencies('archive', config, log);
  const archiver = new Archiver({ archive: new ArchiveRepository(deps.pool), log });
  try {
    await deps.broker.consume(queues.archive, (delivery) => archiver.handle(delivery.event));
  } catch (err) {
    await deps.close();
    throw err;
  }
  log.info('archive consuming');

  let stopping: Promise<void> | null = null;
  return {
    adminPort: deps.adminPort,
    stop() {
      // Stop taking messages, let the ones in flight commit and ack, then close the connections.
      stopping ??= (async () => {
        await deps.broker.drain(config.MOAT_SHUTDOWN_TIMEOUT_MS);
        await deps.close();
      })();
      return stopping;
    },
  };
}
